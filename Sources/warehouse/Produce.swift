import ArgumentParser
import Foundation
import ServiceLifecycle
import Contract
import DataGenerator
import PostgresClient
import RedisClient
import StreamRuntime
import WarehouseSink

extension Warehouse {
    /// `warehouse produce`: new events, through the same validation as replay.
    struct Produce: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Publish new events (one order, a status change, any entity from stdin, or a synthetic live load).",
            discussion: """
                Every record goes through the contract's validation. Bad records are reported on stderr, one line each \
                (input:line [field]: reason), while the good ones are published. Exit 0 when everything was published, 1 \
                when some records were rejected, 2 for unusable input.
                """,
            subcommands: [Stdin.self, Order.self, Status.self, Payment.self, Customer.self, Product.self, Movement.self, Synthetic.self],
            defaultSubcommand: Stdin.self)
    }
}

/// What every produce subcommand shares: servers, namespace, output.
struct ProduceOptions: ParsableArguments {
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var streams: StreamOptions

    @Option(help: "Stream partitions per entity (default: as recorded for the namespace, else 1; given, it must match the record).")
    var partitions: Int?

    @Flag(help: "Print one JSON object: {published: [{line, stream, id, event_id}], rejected: [{line, column, reason}]}.")
    var json = false

    /// The namespace's recorded layout (recorded now if this is the first command to write).
    func layout(on redis: RedisConnection) async throws -> StreamLayout {
        try await streams.layout(partitions: partitions, record: true, command: "produce", on: redis)
    }

    /// Prints what was published and what was rejected; exit 1 when anything was rejected
    /// (unless `exitOnRejects` is false: a streaming caller reporting one chunk of many).
    func report(_ outcome: Producer.Outcome, exitOnRejects: Bool = true) throws {
        for rejection in outcome.rejected {
            FileHandle.standardError.write(Data("rejected \(rejection.description)\n".utf8))
        }
        if json {
            try printEncodedJSON(Report(
                published: outcome.published,
                rejected: outcome.rejected.map { .init(line: $0.line, column: $0.column, reason: $0.reason, code: $0.code) }))
        } else {
            for item in outcome.published { print("published \(item.stream) \(item.id) (line \(item.line), event \(item.eventID))") }
        }
        if exitOnRejects && !outcome.rejected.isEmpty { throw ExitCode(1) }
    }

    struct Report: Encodable {
        struct Rejected: Encodable {
            var line: Int
            var column: String?
            var reason: String
            var code: String
        }
        var published: [Producer.Published]
        var rejected: [Rejected]
    }
}

/// A warning on stderr: the command goes on.
func warn(_ message: String) {
    FileHandle.standardError.write(Data("warning: \(message)\n".utf8))
}

/// Says why the input is unusable on stderr; the caller throws the exit code 2 it returns.
func exitUnusable(_ message: String) -> ExitCode {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    return ExitCode(2)
}

extension Warehouse.Produce {
    /// `warehouse produce --stdin --entity E --format csv|jsonl`.
    struct Stdin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Records of any contract entity on standard input: CSV with a header line, or JSON lines (one object per line).")

        enum Format: String, ExpressibleByArgument { case csv, jsonl }

        @OptionGroup var options: ProduceOptions

        @Flag(help: "Read standard input (the default and only source of this subcommand).")
        var stdin = false

        @Option(help: "The entity: customers, suppliers, products, orders, payments, inventory.")
        var entity: String

        @Option(help: "csv (a header line, then records) or jsonl (one JSON object per line).")
        var format: Format = .csv

        @Option(help: "The longest record or line, in bytes: a longer one (or a CSV quote left open) is rejected and reading goes on at the next line.")
        var maxRecordBytes = CSVReader.defaultMaxRecordBytes

        func run() async throws {
            guard let entity = Entity(rawValue: entity) ?? Entity.allCases.first(where: { $0.eventType == self.entity }) else {
                throw exitUnusable("unknown entity \(self.entity): one of \(Entity.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let redis = try await RedisConnection(url: options.connection.servers.redisURL)
            let producer = Producer(layout: try await options.layout(on: redis))
            // Read as it comes and published a chunk at a time (a live pipe's record goes at once);
            // without --json each event is printed as it is published.
            var outcome = Producer.Outcome()
            var header: [String]?
            let input = ProducerInput(format: format == .csv ? .csv : .jsonl, maxRecordBytes: maxRecordBytes)
            for try await chunk in input {
                var part = Producer.Outcome()
                part.rejected = chunk.unreadable
                switch format {
                case .csv:
                    var records = chunk.csv[...]
                    if header == nil {
                        guard let first = records.popFirst() else {
                            if !chunk.unreadable.isEmpty { throw exitUnusable("stdin: the header line cannot be read: \(chunk.unreadable[0].description)") }
                            continue
                        }
                        header = first.fields
                    }
                    guard !records.isEmpty else { break }
                    do {
                        let published = try await producer.publish(Array(records), entity: entity, header: header!, input: "stdin", on: redis)
                        part.published = published.published
                        part.rejected += published.rejected
                    } catch let error as ContractError {
                        throw exitUnusable("stdin: \(error.description)")
                    }
                case .jsonl:
                    var objects: [(line: Int, values: [String: String])] = []
                    for (line, text) in chunk.jsonl {
                        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
                        if trimmed.isEmpty { continue }
                        if let object = Producer.object(jsonLine: trimmed) {
                            objects.append((line, object))
                        } else {
                            part.rejected.append(Rejection(file: "stdin", line: line, column: nil, reason: "not a JSON object of strings and numbers",
                                                           code: "not_json", raw: String(trimmed.prefix(200))))
                        }
                    }
                    let published = try await producer.publish(objects: objects, entity: entity, input: "stdin", on: redis)
                    part.published = published.published
                    part.rejected += published.rejected
                }
                part.rejected.sort { $0.line < $1.line }
                if !options.json { try options.report(part, exitOnRejects: false) }
                outcome.published += options.json ? part.published : []
                outcome.rejected += part.rejected
            }
            if header == nil && format == .csv && outcome.rejected.isEmpty { throw exitUnusable("stdin: no header line") }
            if options.json {
                try options.report(outcome)
            } else if !outcome.rejected.isEmpty {
                throw ExitCode(1)
            }
        }
    }

    /// `warehouse produce order`.
    struct Order: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One order with one or more lines (the price, when absent, is the product's current price in the warehouse).")

        @OptionGroup var options: ProduceOptions

        @Option(help: "The customer id.")
        var customer: String

        @Option(name: .customLong("line"), help: "PRODUCT:QTY[:PRICE[:DISCOUNT]] (repeatable, one per order line).")
        var lines: [String]

        @Option(help: "The order id (default: generated).")
        var orderID: String?

        @Option(help: "placed, shipped, delivered, cancelled or returned.")
        var status = "placed"

        @Option(help: "The order time (ISO-8601; default: now).")
        var at: String?

        func validate() throws {
            guard !lines.isEmpty else { throw ValidationError("give at least one --line PRODUCT:QTY") }
        }

        func run() async throws {
            let now = Timestamp.now
            let orderTime = at ?? now.description
            let order = orderID ?? "O-\(now.microseconds / 1000)-\(UInt16.random(in: 0...UInt16.max))"
            var prices: [String: String] = [:]
            var missing: [String] = []
            var parsed: [(product: String, quantity: String, price: String?, discount: String)] = []
            for text in lines {
                let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
                guard parts.count >= 2, parts.count <= 4, !parts[0].isEmpty else {
                    throw exitUnusable("--line \(text): expected PRODUCT:QTY[:PRICE[:DISCOUNT]]")
                }
                let price = parts.count >= 3 && !parts[2].isEmpty ? parts[2] : nil
                if price == nil { missing.append(parts[0]) }
                parsed.append((parts[0], parts[1], price, parts.count == 4 ? parts[3] : "0"))
            }
            if !missing.isEmpty {
                do {
                    let postgres = try await PostgresConnection(options.connection.servers.databaseURL)
                    prices = try await WarehouseLookups.currentPrices(of: missing, on: postgres)
                } catch {
                    throw exitUnusable("no price given for \(missing.joined(separator: ", ")) and the warehouse could not be asked (\(error)): pass PRODUCT:QTY:PRICE")
                }
                if let unknown = missing.first(where: { prices[$0] == nil }) {
                    throw exitUnusable("no current price for product \(unknown) in the warehouse: pass \(unknown):QTY:PRICE")
                }
            }
            // A customer or product the warehouse holds no record of is no error (a late-arriving
            // dimension): the loader adds an inferred member until its record arrives. Said, so a
            // typo is not silently a new customer. Not checked when the warehouse cannot be asked.
            let priced = Array(Set(parsed.map(\.product).filter { prices[$0] == nil }))
            if let postgres = try? await PostgresConnection(options.connection.servers.databaseURL),
               let unknown = try? await WarehouseLookups.unknownMembers(customers: [customer], products: priced.sorted(), on: postgres) {
                for id in unknown.customers {
                    warn("customer \(id) is not in the warehouse: unless its record arrives first, the order's lines are loaded against an inferred member until it does")
                }
                for id in unknown.products {
                    warn("product \(id) is not in the warehouse: unless its record arrives first, the order's lines are loaded against an inferred member until it does")
                }
            }
            let header = Entity.orders.schema.columns.map(\.name)
            let records = parsed.enumerated().map { index, line -> (line: Int, fields: [String]) in
                let values: [String: String] = [
                    "order_id": order, "line_number": String(index + 1), "customer_id": customer, "product_id": line.product,
                    "quantity": line.quantity, "unit_price": line.price ?? prices[line.product] ?? "", "discount": line.discount,
                    "status": status, "order_ts": orderTime, "updated_at": now.description,
                ]
                return (index + 1, header.map { values[$0] ?? "" })
            }
            let redis = try await RedisConnection(url: options.connection.servers.redisURL)
            let outcome = try await Producer(layout: try await options.layout(on: redis)).publish(records, entity: .orders, header: header, input: "produce order", on: redis)
            if !options.json && !outcome.published.isEmpty { print("order \(order)") }
            try options.report(outcome)
        }
    }

    /// `warehouse produce status`.
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A new status for an order's lines (all, or --line N), as new versions of the lines the warehouse holds.")

        @OptionGroup var options: ProduceOptions

        @Option(help: "The order id.")
        var order: String

        @Option(help: "shipped, delivered, cancelled, returned (or placed).")
        var status: String

        @Option(help: "Only this line number.")
        var line: Int?

        func run() async throws {
            let lines: [WarehouseLookups.OrderLine]
            do {
                let postgres = try await PostgresConnection(options.connection.servers.databaseURL)
                lines = try await WarehouseLookups.orderLines(order, line: line, on: postgres)
            } catch {
                throw exitUnusable("could not read order \(order) from the warehouse: \(error)")
            }
            guard !lines.isEmpty else {
                throw exitUnusable("order \(order)\(line.map { " line \($0)" } ?? "") is not in the warehouse (has the warehouse group loaded it?)")
            }
            let header = Entity.orders.schema.columns.map(\.name)
            let now = Timestamp.now
            let records = lines.enumerated().map { index, loaded -> (line: Int, fields: [String]) in
                var values = loaded.values
                values["status"] = status
                values["updated_at"] = Timestamp.nextVersion(after: loaded.updatedAt, now: now).description
                return (index + 1, header.map { values[$0] ?? "" })
            }
            let redis = try await RedisConnection(url: options.connection.servers.redisURL)
            try options.report(try await Producer(layout: try await options.layout(on: redis)).publish(records, entity: .orders, header: header, input: "produce status", on: redis))
        }
    }
}

/// `produce payment|customer|product|movement --set column=value …`: one record of the entity;
/// its version time is now and its id generated when not given.
struct EntityRecord {
    static func run(_ entity: Entity, sets: [String], defaults: [String: String], options: ProduceOptions) async throws {
        var values = defaults
        for set in sets {
            guard let equals = set.firstIndex(of: "=") else { throw exitUnusable("--set \(set): expected column=value") }
            values[String(set[..<equals])] = String(set[set.index(after: equals)...])
        }
        let schema = entity.schema
        values[schema.versionColumn] = values[schema.versionColumn] ?? Timestamp.now.description
        let redis = try await RedisConnection(url: options.connection.servers.redisURL)
        let outcome = try await Producer(layout: try await options.layout(on: redis)).publish(
            objects: [(1, values)], entity: entity, input: "produce \(entity.eventType)", on: redis)
        try options.report(outcome)
    }

    static func generatedID(_ prefix: String) -> String {
        "\(prefix)-\(Timestamp.now.microseconds / 1000)-\(UInt16.random(in: 0...UInt16.max))"
    }
}

extension Warehouse.Produce {
    struct Payment: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One payment: --order, --method, --amount, and any other column with --set.")
        @OptionGroup var options: ProduceOptions
        @Option(help: "The order paid.") var order: String
        @Option(help: "credit_card, debit_card, paypal, …") var method: String
        @Option(help: "The amount.") var amount: String
        @Option(help: "authorized, captured, failed or refunded.") var status = "captured"
        @Option(help: "The currency (ISO 4217).") var currency = "USD"
        @Option(name: .customLong("set"), help: "column=value (repeatable): payment_id, processor, paid_at, …") var sets: [String] = []
        func run() async throws {
            try await EntityRecord.run(.payments, sets: sets, defaults: [
                "payment_id": EntityRecord.generatedID("PAY"), "order_id": order, "method": method, "amount": amount,
                "status": status, "currency": currency,
            ], options: options)
        }
    }

    struct Customer: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A customer, new or a new version: --customer-id and columns with --set (segment, state, country, …).")
        @OptionGroup var options: ProduceOptions
        @Option(help: "The customer id (default: generated).") var customerID: String?
        @Option(name: .customLong("set"), help: "column=value (repeatable): first_name, email, city, state, country, segment, signup_date, updated_at") var sets: [String] = []
        func run() async throws {
            try await EntityRecord.run(.customers, sets: sets, defaults: ["customer_id": customerID ?? EntityRecord.generatedID("C")], options: options)
        }
    }

    struct Product: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A product, new or a new version (a price change): --product-id and columns with --set.")
        @OptionGroup var options: ProduceOptions
        @Option(help: "The product id (default: generated).") var productID: String?
        @Option(name: .customLong("set"), help: "column=value (repeatable): name, category, supplier_id, unit_price, unit_cost, updated_at") var sets: [String] = []
        func run() async throws {
            try await EntityRecord.run(.products, sets: sets, defaults: ["product_id": productID ?? EntityRecord.generatedID("P")], options: options)
        }
    }

    struct Movement: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "An inventory movement: --product, --type, --quantity (negative out).")
        @OptionGroup var options: ProduceOptions
        @Option(help: "The product.") var product: String
        @Option(help: "receipt, sale, return or adjustment.") var type: String
        @Option(help: "Units (negative for stock going out).") var quantity: String
        @Option(name: .customLong("set"), help: "column=value (repeatable): movement_id, unit_cost, moved_at, reference") var sets: [String] = []
        func run() async throws {
            try await EntityRecord.run(.inventory, sets: sets, defaults: [
                "movement_id": EntityRecord.generatedID("M"), "product_id": product, "movement_type": type, "quantity": quantity,
            ], options: options)
        }
    }
}

extension Warehouse.Produce {
    /// `warehouse produce synthetic --rate R --duration D`.
    struct Synthetic: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A realistic live load: Poisson order arrivals with payments, status progressions, cancels, returns, stock movements, new customers and price changes.",
            discussion: """
                The catalog is the warehouse's current customers and products; with an empty (or unreachable) warehouse the \
                load first publishes a catalog of its own. Orders arrive at --rate ÷ \(Int(SyntheticLoad.eventsPerOrder)) per \
                second (the events an order brings on average, its later status changes included), so the event rate \
                reaches --rate once the first orders' follow-ups are due. Back-pressure: publishing pauses while the \
                slowest consumer group lags more than --max-lag entries. A summary line every 5 s on stderr.
                """)

        @OptionGroup var options: ProduceOptions
        @OptionGroup var metrics: MetricsOptions

        @Option(help: "Events per second.")
        var rate: Double = 100

        @Option(help: "How long to run: seconds, or with a unit (90s, 10m, 1h).")
        var duration = "60s"

        @Option(help: "Random seed (the same seed gives the same choices).")
        var seed: UInt64 = 1

        @Option(help: "Back-pressure: pause while the slowest group lags more than this many entries (0: never).")
        var maxLag = 100_000

        func validate() throws {
            guard rate > 0 else { throw ValidationError("--rate must be positive") }
            guard Self.length(duration) != nil else { throw ValidationError("--duration: a number of seconds, or 90s, 10m, 1h") }
        }

        /// `--duration` as a positive duration (the same syntax as `consume --state-retention`).
        static func length(_ text: String) -> Duration? {
            parseDurationText(text).flatMap { $0 > .zero ? $0 : nil }
        }

        func run() async throws {
            // The load and the metrics endpoint in one service group; SIGINT/SIGTERM end the load
            // after the events in hand are published, with the usual summary.
            try await runServices(try metrics.services() + [ClosureService { try await generate() }])
        }

        /// Publishes the live load until `--duration` is over or a graceful shutdown, then prints the totals.
        func generate() async throws {
            let servers = options.connection.servers
            let redis = try await RedisConnection(url: servers.redisURL)
            let runner = SyntheticProducer(layout: try await options.layout(on: redis), rate: rate, duration: Self.length(duration)!, maxLag: maxLag)
            var load = SyntheticLoad(catalog: await Self.catalog(servers.databaseURL), seed: seed,
                                     prefix: "S\(seed)" + String(Timestamp.now.milliseconds, radix: 36))
            let totals = try await runner.run(&load, on: redis, log: logLine)
            if options.json {
                printJSON(["events": totals.events, "orders": totals.orders, "rejected": totals.rejected, "seconds": totals.seconds,
                           "events_per_s": Double(totals.events) / totals.seconds, "paused_s": totals.paused] as [String: Any])
            } else {
                print(String(format: "synthetic: %d events in %.1f s (%.0f/s), %d orders, %d rejected, %.1f s paused by back-pressure",
                             totals.events, totals.seconds, Double(totals.events) / totals.seconds, totals.orders, totals.rejected, totals.paused))
            }
            if totals.rejected > 0 { throw ExitCode(1) }
        }

        /// The warehouse's current customers and products; empty when it has none or cannot be reached.
        static func catalog(_ url: String) async -> SyntheticLoad.Catalog {
            var catalog = SyntheticLoad.Catalog()
            guard let postgres = try? await PostgresConnection(url), let current = try? await WarehouseLookups.currentCatalog(on: postgres) else {
                return catalog
            }
            catalog.customers = current.customers.map { SyntheticLoad.Customer(id: $0.id, segment: $0.segment, state: $0.state, country: $0.country) }
            catalog.products = current.products.map {
                SyntheticLoad.Product(id: $0.id, name: $0.name, category: $0.category, supplierID: $0.supplierID, price: $0.price)
            }
            return catalog
        }
    }
}
