/// A pipeline of commands encoded in RESP, ready to send in one write.
///
/// Commands are argv-style and binary safe: every argument is written as a length-prefixed bulk
/// string, so no byte of it is ever interpreted. Build a batch, then hand it to
/// `RedisConnection.send(_:)`, which writes it at once and reads one reply per command.
///
/// ```swift
/// var batch = RedisCommandBuffer()
/// batch.append("SET", "greeting", "hello")
/// batch.begin(arguments: 3)   // the hot-path form: no intermediate arrays
/// batch.add("GET"); batch.add("greeting")
/// ```
public struct RedisCommandBuffer: Sendable {
    /// The encoded bytes.
    public private(set) var bytes: [UInt8] = []
    /// How many commands the buffer holds (how many replies to expect).
    public private(set) var count = 0
    private var argumentsLeft = 0
    /// In a buffer of script arguments (`scriptArguments()`), every bulk string written so far.
    public private(set) var flatArgumentCount = 0
    private let flat: Bool

    public init(reservingCapacity capacity: Int = 0) {
        bytes.reserveCapacity(capacity)
        flat = false
    }

    private init(flat: Bool, capacity: Int) {
        bytes.reserveCapacity(capacity)
        self.flat = flat
    }

    /// A buffer whose commands become the arguments of one script call (`evalsha(_:keys:arguments:commands:)`):
    /// each command is written as its argument count followed by its arguments, all as bulk
    /// strings, for a script that runs them one by one (`redis.call(unpack(ARGV, i + 1, i + n))`).
    /// Every way of adding a command works the same, so code that writes commands need not know
    /// whether they go to a pipeline or into a script.
    public static func scriptArguments(reservingCapacity capacity: Int = 0) -> RedisCommandBuffer {
        RedisCommandBuffer(flat: true, capacity: capacity)
    }

    public var isEmpty: Bool { count == 0 }

    /// True when every command begun has received all of its arguments.
    public var isComplete: Bool { argumentsLeft == 0 }

    /// Starts a command of `arguments` arguments (the command name counts as one).
    public mutating func begin(arguments: Int) {
        precondition(argumentsLeft == 0, "previous command is missing \(argumentsLeft) argument(s)")
        precondition(arguments > 0, "a command needs at least its name")
        if flat {
            // The count as a bulk string: `$len\r\ncount\r\n`.
            var scratch: (UInt64, UInt64, UInt64) = (0, 0, 0)
            let length = withUnsafeMutableBytes(of: &scratch) { Self.formatDecimal(arguments, into: $0) }
            withUnsafeBytes(of: &scratch) { raw in
                Self.appendArgument(UnsafeRawBufferPointer(rebasing: raw[0..<length]), to: &bytes)
            }
            flatArgumentCount += 1
        } else {
            bytes.append(UInt8(ascii: "*"))
            appendDecimal(arguments)
            bytes.append(13); bytes.append(10)
        }
        argumentsLeft = arguments
        count += 1
    }

    /// Appends one EVALSHA of `script` whose arguments are `arguments` followed by every command of
    /// `commands` (a `scriptArguments()` buffer), flattened.
    public mutating func evalsha(_ script: RedisScript, keys: [String], arguments: [String], commands: RedisCommandBuffer) {
        precondition(commands.flat && commands.isComplete, "commands must be a complete scriptArguments() buffer")
        precondition(!flat, "a script call cannot nest in script arguments")
        begin(arguments: 3 + keys.count + arguments.count + commands.flatArgumentCount)
        add("EVALSHA"); add(script.sha1); add(keys.count)
        for key in keys { add(key) }
        for argument in arguments { add(argument) }
        argumentsLeft -= commands.flatArgumentCount
        bytes.append(contentsOf: commands.bytes)
    }

    /// Adds one argument to the command begun last.
    public mutating func add(_ argument: String) {
        var argument = argument
        argument.withUTF8 { addRaw($0) }
    }

    public mutating func add(_ argument: Substring) {
        var argument = argument
        argument.withUTF8 { addRaw($0) }
    }

    public mutating func add(_ argument: [UInt8]) {
        argument.withUnsafeBufferPointer { addRaw($0) }
    }

    public mutating func add(_ argument: Int) {
        // Written as text: that is how Redis reads numbers.
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        let length = withUnsafeMutableBytes(of: &digits) { raw -> Int in
            Self.formatDecimal(argument, into: raw)
        }
        withUnsafeBytes(of: &digits) { raw in
            addRaw(UnsafeBufferPointer(start: raw.baseAddress!.assumingMemoryBound(to: UInt8.self), count: length))
        }
    }

    public mutating func add(_ argument: StreamID) {
        add(argument.description)
    }

    /// Appends a whole command at once.
    public mutating func append(_ arguments: String...) {
        append(arguments)
    }

    /// Appends a whole command at once.
    public mutating func append(_ arguments: [String]) {
        begin(arguments: arguments.count)
        for argument in arguments { add(argument) }
    }

    /// Appends `command key item…` for every item, in commands of at most `perCommand` items
    /// (nothing when there are none): HDEL, ZREM, DEL or SREM of a list of any length, each command
    /// bounded (a script can unpack it; the server's argument buffers stay small).
    public mutating func append(_ command: String, _ key: String?, each items: [String], perCommand: Int = 1000) {
        appendEach(command, key, items, perCommand: perCommand) { $0.add($1) }
    }

    /// The same, for items of raw bytes.
    public mutating func append(_ command: String, _ key: String?, each items: [[UInt8]], perCommand: Int = 1000) {
        appendEach(command, key, items, perCommand: perCommand) { $0.add($1) }
    }

    private mutating func appendEach<Item>(
        _ command: String, _ key: String?, _ items: [Item], perCommand: Int, add item: (inout RedisCommandBuffer, Item) -> Void
    ) {
        var start = 0
        while start < items.count {
            let chunk = items[start..<min(start + perCommand, items.count)]
            begin(arguments: 1 + (key == nil ? 0 : 1) + chunk.count)
            add(command)
            if let key { add(key) }
            for element in chunk { item(&self, element) }
            start += chunk.count
        }
    }

    /// Appends a whole command whose arguments are raw bytes.
    public mutating func append(bytes arguments: [[UInt8]]) {
        begin(arguments: arguments.count)
        for argument in arguments { add(argument) }
    }

    /// Appends one command that `body` writes in RESP itself, for encoders that assemble commands
    /// from pre-encoded fragments. `body` must write exactly one complete command.
    public mutating func appendEncodedCommand(_ body: (inout [UInt8]) -> Void) {
        precondition(argumentsLeft == 0, "a command is incomplete")
        precondition(!flat, "pre-encoded commands cannot be script arguments")
        body(&bytes)
        count += 1
    }

    /// RESP for one bulk-string argument (`$len\r\ntext\r\n`), to keep as a pre-encoded fragment.
    public static func encodedArgument(_ text: String) -> [UInt8] {
        Array("$\(text.utf8.count)\r\n".utf8) + Array(text.utf8) + [13, 10]
    }

    /// Appends RESP for one bulk-string argument of raw bytes to `out`.
    @inline(__always)
    public static func appendArgument(_ argument: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "$"))
        var scratch: (UInt64, UInt64, UInt64) = (0, 0, 0)
        let length = withUnsafeMutableBytes(of: &scratch) { formatDecimal(argument.count, into: $0) }
        withUnsafeBytes(of: &scratch) { out.append(contentsOf: UnsafeRawBufferPointer(rebasing: $0[0..<length])) }
        out.append(13); out.append(10)
        out.append(contentsOf: argument)
        out.append(13); out.append(10)
    }

    /// Removes every command, keeping the storage.
    public mutating func removeAll() {
        precondition(argumentsLeft == 0, "a command is incomplete")
        bytes.removeAll(keepingCapacity: true)
        count = 0
        flatArgumentCount = 0
    }

    @inline(__always)
    private mutating func addRaw(_ argument: UnsafeBufferPointer<UInt8>) {
        precondition(argumentsLeft > 0, "more arguments than the command was begun with")
        argumentsLeft -= 1
        if flat { flatArgumentCount += 1 }
        bytes.append(UInt8(ascii: "$"))
        appendDecimal(argument.count)
        bytes.append(13); bytes.append(10)
        bytes.append(contentsOf: argument)
        bytes.append(13); bytes.append(10)
    }

    @inline(__always)
    private mutating func appendDecimal(_ value: Int) {
        if value >= 0 && value < 10 {
            bytes.append(UInt8(ascii: "0") &+ UInt8(value))
            return
        }
        var scratch: (UInt64, UInt64, UInt64) = (0, 0, 0)
        let length = withUnsafeMutableBytes(of: &scratch) { Self.formatDecimal(value, into: $0) }
        withUnsafeBytes(of: &scratch) { raw in
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[0..<length]))
        }
    }

    /// Writes `value` in decimal at the start of `buffer` (24 bytes is enough) and returns its length.
    package static func formatDecimal(_ value: Int, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var magnitude = value.magnitude
        var reversed: (UInt64, UInt64, UInt64) = (0, 0, 0)
        var length = 0
        withUnsafeMutableBytes(of: &reversed) { digits in
            repeat {
                digits[length] = UInt8(ascii: "0") &+ UInt8(magnitude % 10)
                magnitude /= 10
                length += 1
            } while magnitude > 0
        }
        var out = 0
        if value < 0 {
            buffer[0] = UInt8(ascii: "-")
            out = 1
        }
        withUnsafeBytes(of: &reversed) { digits in
            for index in stride(from: length - 1, through: 0, by: -1) {
                buffer[out] = digits[index]
                out += 1
            }
        }
        return out
    }
}
