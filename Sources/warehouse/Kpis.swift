import ArgumentParser
import Foundation
import Contract
import KPIStore
import RedisClient
import KPIModel
import StreamRuntime

extension Warehouse {
    /// `warehouse kpis`: every KPI from Redis in one round trip.
    struct Kpis: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print every KPI from Redis (one round trip, one consistent snapshot).",
            discussion: """
                --json prints the `report summary` shape (what `report summary --json` computes from PostgreSQL) plus \
                orders_with_revenue, units, aov, windows (5m, 1h, 24h back from the newest event time), buckets (the last \
                60 minutes, 48 hours, 31 days), top_products_latest_day, payment_rates, low_stock and watermark. \
                Sections: \(Self.sections.keys.sorted().joined(separator: ", ")).
                """)

        static let sections: [String: [String]] = [
            "revenue": ["revenue", "orders_with_revenue", "units", "aov", "watermark"],
            "windows": ["windows"],
            "buckets": ["buckets"],
            "products": ["top_products", "top_products_latest_day"],
            "mix": ["revenue", "lines_by_status"],
            "payments": ["payments", "payment_rates"],
            "inventory": ["inventory", "low_stock"],
            "counts": ["counts"],
        ]

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var streams: StreamOptions

        @Flag(help: "Print JSON.")
        var json = false

        @Option(help: "Only this section.")
        var section: String?

        @Option(help: "Products in the top lists and the lowest-stock list.")
        var top = 20

        @Option(help: "Products with this many units on hand or fewer are low on stock.")
        var lowStock = 10

        @Option(help: "Print only the top products of this day (YYYY-MM-DD, UTC).")
        var day: String?

        func validate() throws {
            if let section, Self.sections[section] == nil {
                throw ValidationError("unknown section \(section): one of \(Self.sections.keys.sorted().joined(separator: ", "))")
            }
            guard top > 0 else { throw ValidationError("--top must be positive") }
            if let day, CivilDate.parse(day) == nil { throw ValidationError("--day must be a date, YYYY-MM-DD") }
        }

        func run() async throws {
            let redis = try await RedisConnection(url: connection.servers.redisURL)
            var options = KPISnapshot.Options()
            options.top = top
            options.lowStockThreshold = lowStock
            if let day {
                let products = try await KPISnapshot.topProducts(day: day, KPIKeys(layout: streams.layout()), on: redis, top: top)
                if json {
                    try printEncodedJSON(KPISnapshot.DayTop(day: day, products: products))
                } else {
                    print("top products on \(day): " + (products.isEmpty ? "none" : products.map { "\($0.productID) \($0.revenue)" }.joined(separator: ", ")))
                }
                return
            }
            let snapshot = try await KPISnapshot.read(KPIKeys(layout: streams.layout()), on: redis, options: options)
            if json {
                guard let section else { return try printEncodedJSON(snapshot) }
                let object = try encodedObject(snapshot) as? [String: Any] ?? [:]
                printJSON(object.filter { Self.sections[section]!.contains($0.key) })
                return
            }
            print(Self.render(snapshot, section: section), terminator: "")
        }

        static func render(_ s: KPISnapshot, section: String?) -> String {
            var out = ""
            func show(_ name: String) -> Bool { section == nil || section == name }
            func line(_ text: String) { out += text + "\n" }
            func pairs(_ map: [String: String]) -> String {
                map.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            }
            let r = s.summary.revenue
            if show("revenue") {
                line("revenue      \(r.total) from \(r.lines) lines, \(s.orders) orders, \(s.units) units, AOV \(s.aov)")
                line("as of        \(s.watermark ?? "(no events yet)")")
                for (month, amount) in r.byMonth.sorted(by: { $0.key < $1.key }) { line("  \(month)    \(amount)") }
            }
            if show("windows") {
                for name in ["5m", "1h", "24h"] {
                    guard let w = s.windows[name] else { continue }
                    line("last \(name.padding(toLength: 4, withPad: " ", startingAt: 0))    revenue \(w.revenue), \(w.orders) orders, \(w.lines) lines, AOV \(w.aov)")
                }
            }
            if show("buckets") {
                for (name, series) in [("day", s.buckets.day), ("hour", s.buckets.hour), ("minute", s.buckets.minute)] {
                    for bucket in series where bucket.lines > 0 || bucket.orders > 0 {
                        line("\(name.padding(toLength: 7, withPad: " ", startingAt: 0)) \(bucket.start)  \(bucket.revenue)  \(bucket.orders) orders")
                    }
                }
            }
            if show("products") {
                line("top products " + s.summary.topProducts.prefix(10).map { "\($0.productID) \($0.revenue)" }.joined(separator: ", "))
                if let day = s.topProductsLatestDay.day {
                    line("top on \(day) " + s.topProductsLatestDay.products.prefix(10).map { "\($0.productID) \($0.revenue)" }.joined(separator: ", "))
                }
            }
            if show("mix") {
                line("segment (as was) \(pairs(r.bySegmentAsWas))")
                line("segment (as is)  \(pairs(r.bySegmentAsIs))")
                line("category         \(pairs(r.byCategoryAsWas))")
                line("state            \(pairs(r.byStateAsWas))")
                line("lines by status  \(pairs(s.summary.linesByStatus.mapValues(String.init)))")
            }
            if show("payments") {
                line("payments by method  " + pairs(s.summary.payments.byMethod.mapValues { "\($0.count)×\($0.amount)" }))
                line("payments by status  " + pairs(s.summary.payments.byStatus.mapValues { "\($0.count)×\($0.amount)" }))
                line("failure rate \(s.paymentRates.failureRate), refund rate \(s.paymentRates.refundRate)")
            }
            if show("inventory") {
                line("on hand      \(s.summary.inventory.totalOnHand) units")
                line("lowest       " + s.summary.inventory.lowest.prefix(10).map { "\($0.productID) \($0.onHand)" }.joined(separator: ", "))
                line("low stock (≤ \(s.lowStock.threshold)) " + (s.lowStock.products.isEmpty ? "none" : s.lowStock.products.map { "\($0.productID) \($0.onHand)" }.joined(separator: ", ")))
            }
            if show("counts") {
                let c = s.summary.counts
                line("counts       orders \(c.orders), lines \(c.orderLines), customers \(c.customers), products \(c.products), suppliers \(c.suppliers), payments \(c.payments), movements \(c.movements)")
            }
            return out
        }
    }
}
