/// How XADD or XTRIM trims a stream.
public enum StreamTrim: Sendable, Equatable {
    /// Keep at most this many entries (`MAXLEN`); approximate (`~`) lets Redis trim whole nodes.
    case maxLength(Int, approximate: Bool = true)
    /// Drop entries with ids lower than this (`MINID`).
    case minID(StreamID, approximate: Bool = false)
}

extension RedisCommandBuffer {
    /// Appends `XADD key [MAXLEN|MINID [~] n] id field value …`. `fields` alternate name and value.
    public mutating func xadd(_ key: String, id: String = "*", trim: StreamTrim? = nil, fields: [String]) {
        precondition(!fields.isEmpty && fields.count % 2 == 0, "XADD needs name/value pairs")
        beginXADD(key, id: id, trim: trim, fieldPairs: fields.count / 2)
        for field in fields { add(field) }
    }

    /// Begins `XADD`; add exactly `fieldPairs` name/value pairs with `add(_:)` afterwards.
    public mutating func beginXADD(_ key: String, id: String = "*", trim: StreamTrim? = nil, fieldPairs: Int) {
        begin(arguments: 3 + trimArgumentCount(trim) + fieldPairs * 2)
        add("XADD")
        add(key)
        addTrim(trim)
        add(id)
    }

    /// Appends `XACK key group id …`.
    public mutating func xack(_ key: String, group: String, ids: [StreamID]) {
        begin(arguments: 3 + ids.count)
        add("XACK"); add(key); add(group)
        for id in ids { add(id) }
    }

    /// Appends `EVALSHA sha numkeys key … arg …`.
    public mutating func evalsha(_ script: RedisScript, keys: [String], arguments: [String]) {
        begin(arguments: 3 + keys.count + arguments.count)
        add("EVALSHA"); add(script.sha1); add(keys.count)
        for key in keys { add(key) }
        for argument in arguments { add(argument) }
    }

    package func trimArgumentCount(_ trim: StreamTrim?) -> Int {
        switch trim {
        case nil: 0
        case .maxLength(_, let approximate), .minID(_, let approximate): approximate ? 3 : 2
        }
    }

    package mutating func addTrim(_ trim: StreamTrim?) {
        switch trim {
        case nil: break
        case .maxLength(let count, let approximate):
            add("MAXLEN"); if approximate { add("~") }; add(count)
        case .minID(let id, let approximate):
            add("MINID"); if approximate { add("~") }; add(id)
        }
    }
}
