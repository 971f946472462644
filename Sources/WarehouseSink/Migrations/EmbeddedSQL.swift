/// The SQL compiled into the binary from `Sources/WarehouseSink/SQL` (SwiftPM's `embedInCode`),
/// so `warehouse migrate` and `warehouse report` work from any folder and in the Docker image.
/// A file added there must be listed here too: `EmbeddedSQLTests` fails on a file on disk that
/// is not listed, or listed with other bytes.
public enum EmbeddedSQL {
    /// The migrations, as (file name, text).
    public static let migrations: [(file: String, text: String)] = [
        ("0001_pipeline_state.sql", text(PackageResources._001_pipeline_state_sql)),
        ("0002_star_schema.sql", text(PackageResources._002_star_schema_sql)),
        ("0003_concurrent_loaders.sql", text(PackageResources._003_concurrent_loaders_sql)),
        ("0004_rules.sql", text(PackageResources._004_rules_sql)),
        ("0005_load_at_scale.sql", text(PackageResources._005_load_at_scale_sql)),
    ]

    /// The analytics queries of `analytics/`, as (file name, text).
    public static let analytics: [(file: String, text: String)] = [
        ("customer_analysis.sql", text(PackageResources.customer_analysis_sql)),
        ("inventory_status.sql", text(PackageResources.inventory_status_sql)),
        ("monthly_revenue.sql", text(PackageResources.monthly_revenue_sql)),
        ("payment_analysis.sql", text(PackageResources.payment_analysis_sql)),
        ("top_products.sql", text(PackageResources.top_products_sql)),
    ]

    private static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
}
