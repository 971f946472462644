/// An exact decimal number: `units × 10^-scale`. Money and rates are never binary floating point.
///
/// Parsed from plain decimal text (`-12.50`, `0.1`, `7`); up to 18 significant digits and 9
/// decimal places. Arithmetic for the contract's one formula, the line net amount, is exact.
public struct DecimalValue: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var units: Int64
    public var scale: Int

    public init(units: Int64, scale: Int) {
        self.units = units
        self.scale = scale
    }

    public static let zero = DecimalValue(units: 0, scale: 0)

    /// Parses `[-+]digits[.digits]`; nil for anything else (exponents, thousands separators, `.5`, `5.`).
    public init?(_ text: String) {
        var text = text
        guard let value = text.withUTF8({ Self.parse($0) }) else { return nil }
        self = value
    }

    package static func parse(_ s: UnsafeBufferPointer<UInt8>) -> DecimalValue? {
        var index = 0
        var negative = false
        if index < s.count, s[index] == UInt8(ascii: "-") || s[index] == UInt8(ascii: "+") {
            negative = s[index] == UInt8(ascii: "-")
            index += 1
        }
        var units: Int64 = 0
        var integerDigits = 0
        var significant = 0
        while index < s.count, let d = digit(s[index]) {
            units = units &* 10 &+ Int64(d)
            if units != 0 { significant += 1 }
            integerDigits += 1
            index += 1
        }
        guard integerDigits > 0 else { return nil }
        var scale = 0
        if index < s.count, s[index] == UInt8(ascii: ".") {
            index += 1
            while index < s.count, let d = digit(s[index]) {
                units = units &* 10 &+ Int64(d)
                if units != 0 { significant += 1 }
                scale += 1
                index += 1
            }
            guard scale > 0 else { return nil }
        }
        guard index == s.count, significant <= 18, scale <= 9 else { return nil }
        return DecimalValue(units: negative ? -units : units, scale: scale)
    }

    /// The same value with `scale` decimal places, rounding half away from zero when that drops digits.
    public func rescaled(to newScale: Int) -> DecimalValue {
        if newScale == scale { return self }
        if newScale > scale {
            var value = units
            for _ in scale..<newScale { value *= 10 }
            return DecimalValue(units: value, scale: newScale)
        }
        var divisor: Int64 = 1
        for _ in newScale..<scale { divisor *= 10 }
        return DecimalValue(units: Self.divideRoundingHalfAway(Int128(units), Int128(divisor)).clampedInt64, scale: newScale)
    }

    /// Trailing zeros removed, keeping at least `minimumScale` places.
    public func normalized(minimumScale: Int = 0) -> DecimalValue {
        var value = self
        while value.scale > minimumScale, value.units % 10 == 0 {
            value.units /= 10
            value.scale -= 1
        }
        return value.scale < minimumScale ? value.rescaled(to: minimumScale) : value
    }

    public static func < (lhs: DecimalValue, rhs: DecimalValue) -> Bool {
        let scale = max(lhs.scale, rhs.scale)
        return lhs.wide(at: scale) < rhs.wide(at: scale)
    }

    public static func == (lhs: DecimalValue, rhs: DecimalValue) -> Bool {
        let scale = max(lhs.scale, rhs.scale)
        return lhs.wide(at: scale) == rhs.wide(at: scale)
    }

    public func hash(into hasher: inout Hasher) {
        let n = normalized()
        hasher.combine(n.units)
        hasher.combine(n.scale)
    }

    func wide(at newScale: Int) -> Int128 {
        var value = Int128(units)
        for _ in scale..<max(scale, newScale) { value *= 10 }
        return value
    }

    public var description: String {
        let negative = units < 0
        var digits = String(units.magnitude)
        if scale > 0 {
            if digits.count <= scale { digits = String(repeating: "0", count: scale - digits.count + 1) + digits }
            digits.insert(".", at: digits.index(digits.endIndex, offsetBy: -scale))
        }
        return negative ? "-" + digits : digits
    }

    /// Money as integer cents (2 places, half away from zero).
    public var cents: Int64 { rescaled(to: 2).units }

    package static func divideRoundingHalfAway(_ numerator: Int128, _ divisor: Int128) -> Int128 {
        let quotient = numerator / divisor
        let remainder = numerator % divisor
        if remainder.magnitude * 2 >= divisor.magnitude {
            return numerator < 0 ? quotient - 1 : quotient + 1
        }
        return quotient
    }

    /// Cents as a decimal string with two places (`-1234` → `-12.34`).
    public static func formatCents(_ cents: Int64) -> String {
        DecimalValue(units: cents, scale: 2).description
    }
}

extension Int128 {
    package var clampedInt64: Int64 {
        self > Int128(Int64.max) ? .max : self < Int128(Int64.min) ? .min : Int64(self)
    }
}
