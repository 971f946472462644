/// The amounts of an order line: the contract's one rule for them. The loader's SQL computes the
/// same (`line_amounts` in the migrations, which `fact_sales` is filled with), and the rule
/// table (`Tests/Fixtures/rules.json`) runs through both.
///
/// - gross = round(quantity × unit price, 2)
/// - net = round(quantity × unit price × (1 − discount), 2)
/// - discount amount = gross − net
///
/// Rounding is half away from zero (PostgreSQL's `round(numeric, 2)`), computed exactly.
public struct LineAmounts: Sendable, Equatable {
    public var grossCents: Int64
    public var netCents: Int64
    public var discountCents: Int64 { grossCents - netCents }

    public init(quantity: Int64, unitPrice: DecimalValue, discount: DecimalValue) {
        var priceScale = Int128(1)
        for _ in 0..<unitPrice.scale { priceScale *= 10 }
        var discountScale = Int128(1)
        for _ in 0..<discount.scale { discountScale *= 10 }
        let gross = Int128(quantity) * Int128(unitPrice.units)   // in units of 1/priceScale
        grossCents = DecimalValue.divideRoundingHalfAway(gross * 100, priceScale).clampedInt64
        // quantity × price × (10^ds − d) / 10^(ps + ds), to cents.
        netCents = DecimalValue.divideRoundingHalfAway(gross * (discountScale - Int128(discount.units)) * 100, priceScale * discountScale)
            .clampedInt64
    }
}
