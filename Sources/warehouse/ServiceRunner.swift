import Logging
import ServiceLifecycle
import UnixSignals

/// The composition root of a long-running command: every part is a Service in one ServiceGroup,
/// started in order and, on SIGINT or SIGTERM (or when the main work ends), shut down gracefully
/// in reverse order, each part finishing what it has in hand. The first error of any part ends
/// the group and is rethrown (the command then exits non-zero with its message).
///
/// `services` runs in order: sidecars first (metrics, trimmer, lease keeper), the main work last,
/// so on shutdown the main work stops first and the sidecars outlive it.
func runServices(_ services: [any Service]) async throws {
    var logger = Logger(label: "warehouse")
    logger.logLevel = .warning
    let group = ServiceGroup(configuration: ServiceGroupConfiguration(
        services: services.map {
            .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup)
        },
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger))
    try await group.run()
}
