import PostgresClient
import RedisClient
import Testing
import Contract
import KPIModel
import StreamRuntime
import WarehouseSink
import KPIStore
import DataGenerator
import RedisWire

/// The three classes of failure and what decides them: SQLSTATEs, Redis error prefixes, client codes.
@Suite struct FailureClassTests {
    @Test(arguments: [
        // transient: the infrastructure will recover
        ("08006", FailureClass.transient), ("08001", .transient), ("40001", .transient), ("40P01", .transient),
        ("23505", .transient), ("53300", .transient), ("53200", .transient), ("53100", .transient), ("57P01", .transient),
        ("57P02", .transient), ("57P03", .transient), ("57014", .transient), ("55P03", .transient), ("25006", .transient),
        ("58030", .transient),
        // data: the event can never be applied
        ("22003", .data), ("22P02", .data), ("22001", .data), ("23502", .data), ("23503", .data), ("23514", .data),
        ("21000", .data), ("P0001", .data),
        // fatal: the deployment is wrong
        ("42P01", .fatal), ("42703", .fatal), ("42501", .fatal), ("42883", .fatal), ("28P01", .fatal), ("28000", .fatal),
        ("3D000", .fatal), ("3F000", .fatal), ("57P04", .fatal), ("0A000", .fatal), ("25P02", .fatal), ("XX000", .fatal),
        ("XX001", .fatal), ("58P01", .fatal), ("F0000", .fatal),
    ])
    func sqlStates(_ state: String, _ expected: FailureClass) {
        #expect(FailureClass.of(sqlState: state) == expected, "\(state)")
        #expect(FailureClass.of(PostgresError(.server, "x", sqlState: state)) == expected, "\(state)")
    }

    @Test(arguments: [
        ("LOADING", FailureClass.transient), ("BUSY", .transient), ("TRYAGAIN", .transient), ("OOM", .transient),
        ("READONLY", .transient), ("CLUSTERDOWN", .transient), ("MASTERDOWN", .transient), ("NOREPLICAS", .transient),
        ("MISCONF", .transient), ("NOSCRIPT", .transient),
        ("NOAUTH", .fatal), ("WRONGPASS", .fatal), ("NOPERM", .fatal), ("WRONGTYPE", .fatal), ("NOGROUP", .fatal),
        ("MOVED", .fatal), ("ASK", .fatal), ("CROSSSLOT", .fatal), ("ERR", .fatal), ("FENCED", .fatal), ("SOMETHINGNEW", .fatal),
    ])
    func redisPrefixes(_ prefix: String, _ expected: FailureClass) {
        #expect(FailureClass.of(redisErrorPrefix: prefix) == expected, "\(prefix)")
        #expect(FailureClass.of(RedisError(.server, "\(prefix) something happened")) == expected, "\(prefix)")
    }

    @Test func clientCodes() {
        #expect(FailureClass.of(RedisError(.connection, "reset")) == .transient)
        #expect(FailureClass.of(RedisError(.timeout, "read")) == .transient)
        #expect(FailureClass.of(RedisError(.protocolError, "garbage")) == .transient)
        #expect(FailureClass.of(RedisError(.configuration, "bad url")) == .fatal)
        #expect(FailureClass.of(RedisError(.unexpectedReply, "shape")) == .fatal)
        #expect(FailureClass.of(PostgresError(.connection, "gone")) == .transient)
        #expect(FailureClass.of(PostgresError(.protocolError, "odd")) == .transient)
        #expect(FailureClass.of(PostgresError(.configuration, "bad url")) == .fatal)
        #expect(FailureClass.of(PostgresError(.decoding, "not an int")) == .fatal)
        // A failed connection attempt whose message names bad credentials is fatal, not "down".
        let refused = PostgresError(.connection, "cannot connect: password authentication failed", sqlState: "28P01")
        #expect(FailureClass.of(refused) == .fatal)
        // The Redis handshake keeps the server's prefix first.
        #expect(FailureClass.of(RedisError(.server, "WRONGPASS invalid username-password pair (handshake with redis://h:1/0)")) == .fatal)
    }

    @Test func otherErrors() {
        struct Unknown: Error {}
        #expect(FailureClass.of(Unknown()) == .fatal, "an error nobody classified acknowledges nothing")
        #expect(FailureClass.of(CancellationError()) == .transient)
        #expect(FailureClass.of(ConsumerStop(cause: "c", advice: "a")) == .fatal)
    }

    @Test func fatalMessagesSayWhatToDo() {
        let renamed = ConsumerStop(group: "warehouse", fatal: PostgresError(.server, #"relation "fact_payments" does not exist"#, sqlState: "42P01"))
        #expect(renamed.description.contains("42P01"))
        #expect(renamed.description.contains("warehouse migrate"))
        #expect(renamed.description.contains("Nothing in hand was acknowledged"))
        let auth = ConsumerStop(group: "kpi", fatal: RedisError(.server, "NOAUTH Authentication required."))
        #expect(auth.description.contains("REDIS_URL"))
    }
}
