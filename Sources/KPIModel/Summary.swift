/// The `report summary` shape: the warehouse's headline figures. `warehouse report summary --json`
/// computes it with SQL from PostgreSQL; `warehouse kpis --json` will print the same shape from
/// Redis, and `reconcile` compares the two. Money is a string with two decimals; months are
/// `YYYY-MM` in UTC.
public struct Summary: Codable, Sendable, Equatable {
    public struct Revenue: Codable, Sendable, Equatable {
        public var total: String
        public var lines: Int
        public var byMonth: [String: String]
        public var bySegmentAsWas: [String: String]
        public var bySegmentAsIs: [String: String]
        public var byCategoryAsWas: [String: String]
        public var byStateAsWas: [String: String]

        public init(total: String, lines: Int, byMonth: [String: String], bySegmentAsWas: [String: String], bySegmentAsIs: [String: String], byCategoryAsWas: [String: String], byStateAsWas: [String: String]) {
            self.total = total
            self.lines = lines
            self.byMonth = byMonth
            self.bySegmentAsWas = bySegmentAsWas
            self.bySegmentAsIs = bySegmentAsIs
            self.byCategoryAsWas = byCategoryAsWas
            self.byStateAsWas = byStateAsWas
        }

        enum CodingKeys: String, CodingKey {
            case total, lines
            case byMonth = "by_month"
            case bySegmentAsWas = "by_segment_as_was"
            case bySegmentAsIs = "by_segment_as_is"
            case byCategoryAsWas = "by_category_as_was"
            case byStateAsWas = "by_state_as_was"
        }
    }

    public struct ProductRevenue: Codable, Sendable, Equatable {
        public var productID: String
        public var revenue: String

        public init(productID: String, revenue: String) {
            self.productID = productID
            self.revenue = revenue
        }

        enum CodingKeys: String, CodingKey {
            case productID = "product_id"
            case revenue
        }
    }

    public struct CountAndAmount: Codable, Sendable, Equatable {
        public var count: Int
        public var amount: String

        public init(count: Int, amount: String) {
            self.count = count
            self.amount = amount
        }
    }

    public struct Payments: Codable, Sendable, Equatable {
        public var byMethod: [String: CountAndAmount]
        public var byStatus: [String: CountAndAmount]

        public init(byMethod: [String: CountAndAmount], byStatus: [String: CountAndAmount]) {
            self.byMethod = byMethod
            self.byStatus = byStatus
        }

        enum CodingKeys: String, CodingKey {
            case byMethod = "by_method"
            case byStatus = "by_status"
        }
    }

    public struct OnHand: Codable, Sendable, Equatable {
        public var productID: String
        public var onHand: Int

        public init(productID: String, onHand: Int) {
            self.productID = productID
            self.onHand = onHand
        }

        enum CodingKeys: String, CodingKey {
            case productID = "product_id"
            case onHand = "on_hand"
        }
    }

    public struct Inventory: Codable, Sendable, Equatable {
        public var totalOnHand: Int
        public var lowest: [OnHand]

        public init(totalOnHand: Int, lowest: [OnHand]) {
            self.totalOnHand = totalOnHand
            self.lowest = lowest
        }

        enum CodingKeys: String, CodingKey {
            case totalOnHand = "total_on_hand"
            case lowest
        }
    }

    public struct Counts: Codable, Sendable, Equatable {
        public var orders: Int
        public var orderLines: Int
        public var customers: Int
        public var products: Int
        public var suppliers: Int
        public var payments: Int
        public var movements: Int

        public init(orders: Int, orderLines: Int, customers: Int, products: Int, suppliers: Int, payments: Int, movements: Int) {
            self.orders = orders
            self.orderLines = orderLines
            self.customers = customers
            self.products = products
            self.suppliers = suppliers
            self.payments = payments
            self.movements = movements
        }

        enum CodingKeys: String, CodingKey {
            case orders
            case orderLines = "order_lines"
            case customers, products, suppliers, payments, movements
        }
    }

    public var revenue: Revenue
    public var topProducts: [ProductRevenue]
    public var payments: Payments
    public var linesByStatus: [String: Int]
    public var inventory: Inventory
    public var counts: Counts

    public init(revenue: Revenue, topProducts: [ProductRevenue], payments: Payments, linesByStatus: [String: Int], inventory: Inventory, counts: Counts) {
        self.revenue = revenue
        self.topProducts = topProducts
        self.payments = payments
        self.linesByStatus = linesByStatus
        self.inventory = inventory
        self.counts = counts
    }

    enum CodingKeys: String, CodingKey {
        case revenue
        case topProducts = "top_products"
        case payments
        case linesByStatus = "lines_by_status"
        case inventory, counts
    }
}
