import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

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
        subcommands: [Migrate.self, Replay.self, Generate.self, Consume.self, Kpis.self, Tail.self, Reconcile.self, Lag.self, Produce.self, Report.self, Check.self, Streams.self, DeadLetters.self, Calendar.self, Cache.self, Ping.self, Bench.self, DashboardCommand.self]
    )

    static func main() async {
        #if canImport(Glibc)
        // glibc's fastbins make every allocation of 1 KiB or more consolidate the freed small
        // chunks first; a consumer frees hundreds of thousands of small reply objects per second,
        // so that consolidation was a tenth of the KPI aggregator's time. tcache still serves
        // small allocations.
        _ = glibcMallopt(1 /* M_MXFAST */, 0)
        // glibc gives each new thread an arena of its own (up to 8 per core), and memory freed
        // in one arena is never reused by another: the KPI aggregator's records, allocated on
        // one cooperative thread and freed on the other when they retire, left about 30 % of its
        // resident memory in free chunks (peak RSS on the 2.6 M-event set 473–533 MB with the
        // default arenas, 355–365 MB with one or two). Two arenas: one per core.
        _ = glibcMallopt(-8 /* M_ARENA_MAX */, 2)
        #endif
        await main(nil)
    }
}

#if canImport(Glibc)
/// glibc's `mallopt` (from malloc.h, which the Glibc module does not export).
@_silgen_name("mallopt")
private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif
