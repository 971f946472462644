public import RedisClient
public import KPIModel
import Contract
import RedisWire

/// Every KPI at one instant, read in one round trip (one script over the `{kpi}` slot, so the
/// figures are consistent with each other): what `warehouse kpis` prints and `reconcile` compares.
public struct KPISnapshot: Sendable, Equatable {
    public struct Window: Sendable, Equatable, Codable {
        public var revenue: String
        public var orders: Int
        public var lines: Int
        public var units: Int
        public var aov: String
    }

    public struct BucketFigures: Sendable, Equatable, Codable {
        public var start: String
        public var revenue: String
        public var orders: Int
        public var lines: Int
        public var units: Int
    }

    public struct Buckets: Sendable, Equatable, Codable {
        public var minute: [BucketFigures]
        public var hour: [BucketFigures]
        public var day: [BucketFigures]
    }

    public struct DayTop: Sendable, Equatable, Codable {
        public var day: String?
        public var products: [Summary.ProductRevenue]
        public init(day: String?, products: [Summary.ProductRevenue]) {
            self.day = day
            self.products = products
        }
    }

    public struct LowStock: Sendable, Equatable, Codable {
        public var threshold: Int
        public var products: [Summary.OnHand]
    }

    public struct Rates: Sendable, Equatable, Codable {
        public var failureRate: String
        public var refundRate: String
        enum CodingKeys: String, CodingKey {
            case failureRate = "failure_rate"
            case refundRate = "refund_rate"
        }
    }

    public var summary: Summary
    public var orders: Int
    public var units: Int
    public var aov: String
    public var windows: [String: Window]
    public var buckets: Buckets
    public var topProductsLatestDay: DayTop
    public var paymentRates: Rates
    public var lowStock: LowStock
    public var watermark: String?
    /// The raw totals hash (what `tail` and `--section` filter on).
    public var totals: [String: String]

    /// The read: totals, top products (with every product tied with the last), the latest day's
    /// top products, lowest stock, low stock, and the recent minute, hour and day buckets.
    static let script = RedisScript("""
        local n = tonumber(ARGV[1])
        local function top(key, reverse)
          local first
          if reverse then first = redis.call('ZREVRANGE', key, 0, n - 1, 'WITHSCORES')
          else first = redis.call('ZRANGE', key, 0, n - 1, 'WITHSCORES') end
          if #first < 2 * n then return first end
          local edge = first[#first]
          if reverse then return redis.call('ZREVRANGEBYSCORE', key, '+inf', edge, 'WITHSCORES') end
          return redis.call('ZRANGEBYSCORE', key, '-inf', edge, 'WITHSCORES')
        end
        local totals = redis.call('HGETALL', KEYS[1])
        local marks = {}
        for i = 1, #totals, 2 do
          local name = totals[i]
          if name == 'watermark:minute' or name == 'watermark:hour' or name == 'watermark:day' or name == 'latest_day' then
            marks[name] = totals[i + 1]
          end
        end
        local function recent(key, last, count)
          if not last then return {} end
          last = tonumber(last)
          local fields = {}
          for i = last - count + 1, last do fields[#fields + 1] = string.format('%d', i) end
          return redis.call('HMGET', key, unpack(fields))
        end
        local dayTop = {}
        if marks['latest_day'] then dayTop = top(ARGV[2] .. marks['latest_day'], true) end
        return {
          totals, top(KEYS[2], true), dayTop, top(KEYS[3], false),
          redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[3], 'WITHSCORES', 'LIMIT', 0, 100),
          recent(KEYS[4], marks['watermark:minute'], tonumber(ARGV[4])),
          recent(KEYS[5], marks['watermark:hour'], tonumber(ARGV[5])),
          recent(KEYS[6], marks['watermark:day'], tonumber(ARGV[6]))
        }
        """)

    public struct Options: Sendable {
        public var top = 20
        public var lowStockThreshold = 10
        public var minutes = 60
        public var hours = 48
        public var days = 31
        public init() {}
    }

    /// Reads the snapshot.
    public static func read(_ keys: KPIKeys, on redis: RedisConnection, options: Options = Options()) async throws -> KPISnapshot {
        let reply = try await redis.run(
            script, keys: [keys.totals, keys.products, keys.onHand, keys.minutes, keys.hours, keys.days],
            arguments: [String(options.top), keys.dayProductsPrefix, String(options.lowStockThreshold), String(options.minutes),
                        String(options.hours), String(options.days)]
        ).throwingServerError()
        guard let parts = reply.array, parts.count == 8 else { throw RedisError(.unexpectedReply, "the KPI read script") }
        var totals: [String: String] = [:]
        let flat = parts[0].array ?? []
        var index = 0
        while index + 1 < flat.count {
            if let name = flat[index].string, let value = flat[index + 1].string { totals[name] = value }
            index += 2
        }
        return decode(
            totals: totals, top: scored(parts[1]), dayTop: scored(parts[2]), lowest: scored(parts[3]), low: scored(parts[4]),
            minutes: parts[5].array?.map(\.string) ?? [], hours: parts[6].array?.map(\.string) ?? [],
            days: parts[7].array?.map(\.string) ?? [], options: options)
    }

    /// The top products of one day (`YYYY-MM-DD`), ties ordered by product id.
    public static func topProducts(day: String, _ keys: KPIKeys, on redis: RedisConnection, top: Int = 20) async throws -> [Summary.ProductRevenue] {
        let key = keys.dayProductsPrefix + day
        let first = scored(try await redis.command("ZREVRANGE", key, "0", String(top - 1), "WITHSCORES").throwingServerError())
        var all = first
        if first.count == top, let edge = first.last?.1 {
            all = scored(try await redis.command("ZREVRANGEBYSCORE", key, "+inf", String(edge), "WITHSCORES").throwingServerError())
        }
        return all.sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }.prefix(top)
            .map { Summary.ProductRevenue(productID: $0.0, revenue: KPIView.money($0.1)) }
    }

    static func scored(_ reply: RedisReply) -> [(String, Int64)] {
        let items = reply.array ?? []
        var out: [(String, Int64)] = []
        var index = 0
        while index + 1 < items.count {
            if let member = items[index].string, let score = items[index + 1].string.flatMap(Double.init) {
                out.append((member, Int64(score.rounded())))
            }
            index += 2
        }
        return out
    }

    static func decode(
        totals: [String: String], top: [(String, Int64)], dayTop: [(String, Int64)], lowest: [(String, Int64)],
        low: [(String, Int64)], minutes: [String?], hours: [String?], days: [String?], options: Options
    ) -> KPISnapshot {
        func int(_ name: String) -> Int { totals[name].flatMap { Int($0) } ?? 0 }
        func group(_ prefix: String) -> [String: String] {
            var out: [String: String] = [:]
            for (name, value) in totals where name.hasPrefix(prefix) { out[String(name.dropFirst(prefix.count))] = value }
            return out
        }
        func payments(_ prefix: String) -> [String: Summary.CountAndAmount] {
            var out: [String: Summary.CountAndAmount] = [:]
            for (name, value) in totals where name.hasPrefix(prefix) && name.hasSuffix(":count") {
                let key = String(name.dropFirst(prefix.count).dropLast(":count".count))
                out[key] = Summary.CountAndAmount(count: Int(value) ?? 0, amount: totals[prefix + key + ":amount"] ?? "0.00")
            }
            return out
        }
        // Ties are ordered by product id, as the SQL summary orders them.
        func ranked(_ items: [(String, Int64)], descending: Bool) -> [(String, Int64)] {
            Array(items.sorted { a, b in a.1 != b.1 ? (descending ? a.1 > b.1 : a.1 < b.1) : a.0 < b.0 }.prefix(options.top))
        }
        var lines: [String: Int] = [:]
        for status in OrderStatus.allCases { lines[status.rawValue] = int("lines:status:\(status.rawValue)") }
        let summary = Summary(
            revenue: Summary.Revenue(
                total: totals["revenue"] ?? "0.00", lines: int("lines"), byMonth: group("revenue:month:"),
                bySegmentAsWas: group("revenue:segment_was:"), bySegmentAsIs: group("revenue:segment_is:"),
                byCategoryAsWas: group("revenue:category:"), byStateAsWas: group("revenue:state_was:")),
            topProducts: ranked(top, descending: true).map { Summary.ProductRevenue(productID: $0.0, revenue: KPIView.money($0.1)) },
            payments: Summary.Payments(byMethod: payments("payments:method:"), byStatus: payments("payments:status:")),
            linesByStatus: lines,
            inventory: Summary.Inventory(
                totalOnHand: int("inventory:on_hand"),
                lowest: ranked(lowest, descending: false).map { Summary.OnHand(productID: $0.0, onHand: Int($0.1)) }),
            counts: Summary.Counts(
                orders: int("count:orders"), orderLines: int("count:order_lines"), customers: int("count:customers"),
                products: int("count:products"), suppliers: int("count:suppliers"), payments: int("count:payments"),
                movements: int("count:movements")))
        var windows: [String: Window] = [:]
        for window in KPIView.windows {
            let p = "window:\(window.name):"
            windows[window.name] = Window(
                revenue: totals[p + "revenue"] ?? "0.00", orders: int(p + "orders"), lines: int(p + "lines"),
                units: int(p + "units"), aov: totals[p + "aov"] ?? "0.00")
        }
        func series(_ values: [String?], last: String?, _ g: KPIState.Granularity) -> [BucketFigures] {
            guard let last = last.flatMap({ Int64($0) }) else { return [] }
            let first = last - Int64(values.count) + 1
            return values.enumerated().map { offset, value in
                let figures = value.flatMap(KPIView.figures(bucket:)) ?? KPIState.Figures()
                let start = Timestamp(microseconds: (first + Int64(offset)) * g.microseconds).description
                return BucketFigures(
                    start: start, revenue: KPIView.money(figures.revenueCents), orders: Int(figures.orders),
                    lines: Int(figures.lines), units: Int(figures.units))
            }
        }
        return KPISnapshot(
            summary: summary, orders: int("orders"), units: int("units"), aov: totals["aov"] ?? "0.00", windows: windows,
            buckets: Buckets(
                minute: series(minutes, last: totals["watermark:minute"], .minute),
                hour: series(hours, last: totals["watermark:hour"], .hour),
                day: series(days, last: totals["watermark:day"], .day)),
            topProductsLatestDay: DayTop(
                day: totals["latest_day"],
                products: ranked(dayTop, descending: true).map { Summary.ProductRevenue(productID: $0.0, revenue: KPIView.money($0.1)) }),
            paymentRates: Rates(failureRate: totals["payments:failure_rate"] ?? "0.0000", refundRate: totals["payments:refund_rate"] ?? "0.0000"),
            lowStock: LowStock(
                threshold: options.lowStockThreshold,
                products: ranked(low, descending: false).map { Summary.OnHand(productID: $0.0, onHand: Int($0.1)) }),
            watermark: totals["watermark"], totals: totals)
    }
}

extension KPISnapshot: Encodable {
    enum ExtraKeys: String, CodingKey {
        case units, aov, windows, buckets, watermark
        case orders = "orders_with_revenue"
        case topProductsLatestDay = "top_products_latest_day"
        case paymentRates = "payment_rates"
        case lowStock = "low_stock"
    }

    /// The `report summary` shape, plus the extra keys.
    public func encode(to encoder: any Encoder) throws {
        try summary.encode(to: encoder)
        var container = encoder.container(keyedBy: ExtraKeys.self)
        try container.encode(orders, forKey: .orders)
        try container.encode(units, forKey: .units)
        try container.encode(aov, forKey: .aov)
        try container.encode(windows, forKey: .windows)
        try container.encode(buckets, forKey: .buckets)
        try container.encode(topProductsLatestDay, forKey: .topProductsLatestDay)
        try container.encode(paymentRates, forKey: .paymentRates)
        try container.encode(lowStock, forKey: .lowStock)
        try container.encode(watermark, forKey: .watermark)
    }
}
