import ArgumentParser

/// The `warehouse` command: one executable, one subcommand per job.
@main
struct Warehouse: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "warehouse",
        abstract: "StreamWarehouse: e-commerce events on Redis Streams, loaded into a PostgreSQL star schema and live KPIs.",
        discussion: """
            Servers come from REDIS_URL and DATABASE_URL (or --redis-url / --database-url), defaulting to the \
            local servers that scripts/services.sh starts.
            """,
        subcommands: [Migrate.self, Replay.self, Generate.self, Consume.self, Kpis.self, Tail.self, Reconcile.self, Report.self, Check.self, Streams.self, DeadLetters.self, Ping.self, Bench.self]
    )
}
