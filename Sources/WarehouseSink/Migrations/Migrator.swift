public import PostgresClient

/// Applies numbered migrations in order, each once, each in its own transaction, recording them
/// in `schema_migrations`. Safe to run twice and from several processes at once: a session-level
/// advisory lock lets one migrator work at a time, and the others then find nothing left to do.
public struct Migrator: Sendable {
    /// What one run did.
    public struct Report: Sendable, Equatable {
        /// Migrations applied by this run, in order.
        public var applied: [Int]
        /// Migrations that were already applied.
        public var alreadyApplied: [Int]
    }

    /// The advisory lock key (any constant bigint; this one spells "swmigrat").
    public static let lockKey: Int64 = 0x73_77_6d_69_67_72_61_74

    public let migrations: [Migration]

    public init(migrations: [Migration]) {
        self.migrations = migrations
    }

    public func run(on connection: PostgresConnection) async throws -> Report {
        try await connection.execute("SELECT pg_advisory_lock($1)", [PostgresBind(Self.lockKey)])
        do {
            let report = try await applyPending(connection)
            try await connection.execute("SELECT pg_advisory_unlock($1)", [PostgresBind(Self.lockKey)])
            return report
        } catch {
            _ = try? await connection.execute("SELECT pg_advisory_unlock($1)", [PostgresBind(Self.lockKey)])
            throw error
        }
    }

    private func applyPending(_ connection: PostgresConnection) async throws -> Report {
        try await connection.executeScript("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                checksum   text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """)
        let rows = try await connection.query("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
        var recorded: [Int: String] = [:]
        for row in rows.rows {
            recorded[try row.decode(Int.self, at: 0)] = try row.decode(String.self, at: 2)
        }
        var report = Report(applied: [], alreadyApplied: [])
        for migration in migrations {
            if let checksum = recorded[migration.version] {
                guard checksum == migration.checksum else {
                    throw MigrationError(
                        "migration \(migration.version) (\(migration.name)) was changed after it was applied; add a new migration instead")
                }
                report.alreadyApplied.append(migration.version)
                continue
            }
            try await connection.withTransaction { connection in
                try await connection.executeScript(migration.sql)
                try await connection.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    [PostgresBind(migration.version), .text(migration.name), .text(migration.checksum)]
                )
            }
            report.applied.append(migration.version)
        }
        return report
    }
}
