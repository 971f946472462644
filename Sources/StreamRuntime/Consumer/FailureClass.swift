public import PostgresClient
public import RedisWire

/// What a consumer does about a failure: the one decision every error comes down to.
///
/// - `data`: the event itself can never be applied (a value out of range, a constraint the row
///   violates, an undecodable entry). Dead-letter that entry alone with the reason, ack it, go on.
/// - `transient`: the infrastructure will recover (a lost connection, a timeout, a serialization
///   failure or deadlock, a unique violation raised by a concurrent writer, a server starting,
///   failing over, out of memory or busy). Retry with backoff behind the circuit breaker; never
///   dead-letter, never ack.
/// - `fatal`: the deployment is wrong (a missing table or column, a permission, credentials, an
///   unknown database, a schema older than the code, a key of the wrong type, a missing group, a
///   Redis Cluster redirection). Stop without acknowledging anything in hand, say what to do, exit
///   non-zero.
///
/// `FailureClass.of(_:)` is pure (it reads only the error), so its table is unit-tested.
public enum FailureClass: String, Sendable, Equatable, CaseIterable {
    case data, transient, fatal

    /// The class of any error a consumer can meet. Errors of unknown types are fatal: acknowledging
    /// nothing and stopping is the only answer that can never lose or double an event.
    public static func of(_ error: any Error) -> FailureClass {
        switch error {
        case let error as PostgresError: of(error)
        case let error as RedisError: of(error)
        case is ConsumerStop: .fatal
        case is CancellationError: .transient
        default: .fatal
        }
    }

    public static func of(_ error: PostgresError) -> FailureClass {
        if let state = error.sqlState { return of(sqlState: state) }
        switch error.code {
        case .connection, .protocolError: return .transient
        default: return .fatal   // configuration (an unusable URL), decoding (the code and the schema disagree)
        }
    }

    public static func of(_ error: RedisError) -> FailureClass {
        switch error.code {
        case .connection, .timeout, .protocolError: return .transient
        case .server: return of(redisErrorPrefix: error.serverErrorPrefix ?? "")
        default: return .fatal   // configuration, a reply of a shape the code does not expect
        }
    }

    /// PostgreSQL's SQLSTATEs (Appendix A of its manual), by class and then by exception.
    public static func of(sqlState state: String) -> FailureClass {
        switch state {
        // Transient exceptions inside otherwise-fatal or data classes.
        case "23505":                       // unique_violation: with every write an upsert, only a concurrent writer raises it
            return .transient
        case "25006":                       // read_only_sql_transaction: connected to a standby during a failover
            return .transient
        case "55P03", "55006":              // lock_not_available, object_in_use
            return .transient
        case "57P04":                       // database_dropped
            return .fatal
        case "58P01", "58P02":              // undefined_file, duplicate_file: the installation is broken
            return .fatal
        default:
            break
        }
        switch state.prefix(2) {
        case "08",                          // connection exception
             "40",                          // transaction rollback: serialization failure, deadlock
             "53",                          // insufficient resources: disk full, out of memory, too many connections
             "57",                          // operator intervention: admin or crash shutdown, cannot connect now, query cancelled
             "58":                          // system error: I/O
            return .transient
        case "21",                          // cardinality violation
             "22",                          // data exception: out of range, invalid text representation, …
             "23",                          // integrity constraint violation: not null, foreign key, check, exclusion
             "27",                          // triggered data change violation
             "44",                          // WITH CHECK OPTION violation
             "P0":                          // raised by a PL/pgSQL function or trigger (RAISE, ASSERT)
            return .data
        default:                            // 42 undefined table/column, permission; 28 credentials; 3D000
            return .fatal                   // unknown database; 3F000 schema; 0A, 25, 2D, 39, F0, XX, …
        }
    }

    /// Redis's error replies, by their first word.
    public static func of(redisErrorPrefix prefix: String) -> FailureClass {
        switch prefix {
        case "LOADING", "BUSY", "TRYAGAIN", "OOM", "READONLY", "CLUSTERDOWN", "MASTERDOWN", "NOREPLICAS", "MISCONF",
             "NOSCRIPT", "UNBLOCKED":
            return .transient
        default:
            // NOAUTH, WRONGPASS, NOPERM, WRONGTYPE, NOGROUP, MOVED and ASK (until the client follows
            // redirections), CROSSSLOT, ERR (a command this code should never send wrong), and any
            // prefix this table does not know.
            return .fatal
        }
    }

    /// What an operator should do about a fatal failure, in one sentence.
    public static func advice(for error: any Error) -> String {
        if let error = error as? ConsumerStop { return error.advice }
        if let error = error as? LayoutError { return error.advice }
        if let error = error as? PostgresError {
            let state = error.sqlState ?? ""
            switch state.prefix(2) {
            case "42":
                return state == "42501"
                    ? "grant the loader's role the privileges it needs on the warehouse tables"
                    : "the schema does not match the code: run `warehouse migrate` against DATABASE_URL, and check that no table or column was renamed or dropped"
            case "28": return "check the user and password in DATABASE_URL and the server's pg_hba.conf"
            case "3D": return "the database in DATABASE_URL does not exist: create it, or fix the URL"
            case "3F": return "the schema on the search path does not exist: run `warehouse migrate`, or fix the URL's options"
            default: break
            }
            if error.code == .configuration { return "fix DATABASE_URL (or --database-url)" }
            if error.code == .decoding { return "the schema does not match the code: run `warehouse migrate`" }
            return "look at the PostgreSQL server's log for this error, fix the cause, then restart the consumer"
        }
        if let error = error as? RedisError {
            switch error.serverErrorPrefix ?? "" {
            case "NOAUTH", "WRONGPASS": return "check the user and password in REDIS_URL"
            case "NOPERM": return "grant the Redis user in REDIS_URL the commands and keys the consumer needs (ACL SETUSER)"
            case "WRONGTYPE": return "a key the pipeline owns holds another type: another application shares this namespace; use --namespace or a separate database"
            case "NOGROUP": return "a stream or its consumer group was deleted while the consumer ran: restart it to create the group again (it re-reads from the start)"
            case "CROSSSLOT": return "a command touched keys of several hash slots on a Redis Cluster, which is a bug: report it with this message"
            case "MOVED", "ASK": return "the cluster kept redirecting (a resharding that does not settle?): check CLUSTER INFO and restart the consumer"
            default: break
            }
            if error.code == .configuration { return "fix REDIS_URL (or --redis-url)" }
            return "look at the Redis server's log for this error, fix the cause, then restart the consumer"
        }
        return "this is a bug or an unexpected state: report it with this message, then restart the consumer"
    }
}

/// A consumer that stops on purpose: a fatal failure, a deployment the consumer refuses to run on,
/// or a lost KPI lease. Its description is the one line the operator reads.
public struct ConsumerStop: Error, Sendable, CustomStringConvertible {
    /// What made the consumer stop, without advice.
    public var cause: String
    /// What the operator should do.
    public var advice: String

    public init(cause: String, advice: String) {
        self.cause = cause
        self.advice = advice
    }

    /// A consumer stopped by `error` (fatal), with the advice that goes with it.
    public init(group: String, fatal error: any Error) {
        if let stop = error as? ConsumerStop {
            self = stop
        } else {
            self.init(cause: "consumer group \(group) stopped on a fatal error: \(error)", advice: FailureClass.advice(for: error))
        }
    }

    public var description: String { "\(cause). Nothing in hand was acknowledged. What to do: \(advice)." }
}
