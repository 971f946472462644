#if canImport(Glibc)
import Glibc
#endif

/// An instant, in microseconds since the Unix epoch (UTC).
public struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var microseconds: Int64

    public init(microseconds: Int64) { self.microseconds = microseconds }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool { lhs.microseconds < rhs.microseconds }

    /// The current wall-clock time.
    public static var now: Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Timestamp(microseconds: Int64(spec.tv_sec) * 1_000_000 + Int64(spec.tv_nsec) / 1000)
    }

    public var milliseconds: Int64 { microseconds >= 0 ? microseconds / 1000 : (microseconds - 999) / 1000 }

    /// Parses ISO-8601 with a `Z` or `±HH:MM` / `±HHMM` / `±HH` offset, a `T` or a space between date
    /// and time, optional seconds fraction (up to 9 digits; kept to the microsecond).
    /// `2024-03-01T14:05:00Z`, `2024-03-01T09:05:00.25-05:00`.
    public init?(iso8601 text: String) {
        var text = text
        guard let value = text.withUTF8({ Self.parse($0) }) else { return nil }
        self = value
    }

    package static func parse(_ s: UnsafeBufferPointer<UInt8>) -> Timestamp? {
        guard s.count >= 20 else { return nil }
        guard let (year, month, day) = CivilDate.parseDate(s, 0) else { return nil }
        guard s[10] == UInt8(ascii: "T") || s[10] == UInt8(ascii: "t") || s[10] == UInt8(ascii: " ") else { return nil }
        guard let hour = twoDigits(s, 11), s[13] == UInt8(ascii: ":"), let minute = twoDigits(s, 14),
              s[16] == UInt8(ascii: ":"), let second = twoDigits(s, 17),
              hour < 24, minute < 60, second < 60
        else { return nil }
        var index = 19
        var micros: Int64 = 0
        if index < s.count, s[index] == UInt8(ascii: ".") || s[index] == UInt8(ascii: ",") {
            index += 1
            var digits = 0
            while index < s.count, let digit = digit(s[index]) {
                if digits < 6 { micros = micros * 10 + Int64(digit) }
                digits += 1
                index += 1
            }
            guard digits > 0, digits <= 9 else { return nil }
            if digits < 6 { for _ in digits..<6 { micros *= 10 } }
        }
        guard index < s.count else { return nil }
        var offsetSeconds: Int64 = 0
        switch s[index] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            index += 1
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            let sign: Int64 = s[index] == UInt8(ascii: "-") ? -1 : 1
            index += 1
            guard let offsetHours = twoDigits(s, index) else { return nil }
            index += 2
            var offsetMinutes = 0
            if index < s.count {
                if s[index] == UInt8(ascii: ":") { index += 1 }
                guard let minutes = twoDigits(s, index) else { return nil }
                offsetMinutes = minutes
                index += 2
            }
            guard offsetHours <= 18, offsetMinutes < 60 else { return nil }
            offsetSeconds = sign * Int64(offsetHours * 3600 + offsetMinutes * 60)
        default:
            return nil
        }
        guard index == s.count else { return nil }
        let days = CivilDate.daysFromCivil(year: year, month: month, day: day)
        let seconds = days * 86_400 + Int64(hour * 3600 + minute * 60 + second) - offsetSeconds
        // An offset can carry a local 9999-12-31 into UTC year 10000 (or 0000-01-01 into year -1),
        // whose canonical form has no four-digit year and would not parse back: refused.
        guard seconds >= Self.firstSecond, seconds <= Self.lastSecond else { return nil }
        return Timestamp(microseconds: seconds * 1_000_000 + micros)
    }

    /// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z, in seconds since the epoch: the instants
    /// whose UTC form has a four-digit year.
    static let firstSecond: Int64 = CivilDate.daysFromCivil(year: 0, month: 1, day: 1) * 86_400
    static let lastSecond: Int64 = CivilDate.daysFromCivil(year: 9999, month: 12, day: 31) * 86_400 + 86_399

    /// Canonical ISO-8601 in UTC: `2024-03-01T14:05:00Z`, or with `.ffffff` when not whole seconds.
    public var description: String {
        let seconds = microseconds >= 0 ? microseconds / 1_000_000 : (microseconds - 999_999) / 1_000_000
        let micros = microseconds - seconds * 1_000_000
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = Int(seconds - days * 86_400)
        let (year, month, day) = CivilDate.civilFromDays(days)
        guard (0...9999).contains(year) else {
            return CivilDate.format(year: year, month: month, day: day) + "T" + pad2(secondOfDay / 3600) + ":"
                + pad2(secondOfDay / 60 % 60) + ":" + pad2(secondOfDay % 60) + "Z"
        }
        // Formatted into a fixed buffer: this runs for every timestamp of every row.
        return String(unsafeUninitializedCapacity: 27) { buffer in
            func put(_ value: Int, _ width: Int, at index: Int) {
                var value = value
                for position in stride(from: index + width - 1, through: index, by: -1) {
                    buffer[position] = UInt8(ascii: "0") &+ UInt8(value % 10)
                    value /= 10
                }
            }
            put(year, 4, at: 0); buffer[4] = UInt8(ascii: "-")
            put(month, 2, at: 5); buffer[7] = UInt8(ascii: "-")
            put(day, 2, at: 8); buffer[10] = UInt8(ascii: "T")
            put(secondOfDay / 3600, 2, at: 11); buffer[13] = UInt8(ascii: ":")
            put(secondOfDay / 60 % 60, 2, at: 14); buffer[16] = UInt8(ascii: ":")
            put(secondOfDay % 60, 2, at: 17)
            var end = 19
            if micros != 0 {
                buffer[19] = UInt8(ascii: ".")
                put(Int(micros), 6, at: 20)
                end = 26
            }
            buffer[end] = UInt8(ascii: "Z")
            return end + 1
        }
    }

    /// True when `text` is already this timestamp's canonical form (the common case: UTC, whole
    /// seconds, `T`, `Z`), so a validator can keep the string it has.
    static func isCanonicalShape(_ s: UnsafeBufferPointer<UInt8>) -> Bool {
        if s.count == 20 { return s[10] == UInt8(ascii: "T") && s[19] == UInt8(ascii: "Z") }
        guard s.count == 27, s[10] == UInt8(ascii: "T"), s[19] == UInt8(ascii: "."), s[26] == UInt8(ascii: "Z") else { return false }
        for index in 20..<26 where s[index] != UInt8(ascii: "0") { return true }
        return false
    }

    /// The UTC calendar day (days since 1970-01-01).
    public var utcDay: Int64 {
        let seconds = microseconds >= 0 ? microseconds / 1_000_000 : (microseconds - 999_999) / 1_000_000
        return seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
    }
}

/// Calendar arithmetic on the proleptic Gregorian calendar (Howard Hinnant's algorithms).
public enum CivilDate {
    /// Days since 1970-01-01 of a civil date.
    public static func daysFromCivil(year: Int, month: Int, day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let m = Int64(month)
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The civil date of a day number (days since 1970-01-01).
    public static func civilFromDays(_ days: Int64) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (Int(m <= 2 ? y + 1 : y), Int(m), Int(d))
    }

    public static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// `YYYY-MM-DD` at `offset`, validated (month 1–12, day within the month).
    static func parseDate(_ s: UnsafeBufferPointer<UInt8>, _ offset: Int) -> (Int, Int, Int)? {
        guard s.count >= offset + 10, let y1 = twoDigits(s, offset), let y2 = twoDigits(s, offset + 2),
              s[offset + 4] == UInt8(ascii: "-"), let month = twoDigits(s, offset + 5),
              s[offset + 7] == UInt8(ascii: "-"), let day = twoDigits(s, offset + 8)
        else { return nil }
        let year = y1 * 100 + y2
        guard (1...12).contains(month), day >= 1, day <= daysInMonth(year: year, month: month) else { return nil }
        return (year, month, day)
    }

    /// Parses exactly `YYYY-MM-DD`; returns the day number.
    public static func parse(_ text: String) -> Int64? {
        var text = text
        return text.withUTF8 { s -> Int64? in
            guard s.count == 10, let (y, m, d) = parseDate(s, 0) else { return nil }
            return daysFromCivil(year: y, month: m, day: d)
        }
    }

    public static func format(year: Int, month: Int, day: Int) -> String {
        var yearText = String(year)
        if yearText.count < 4 { yearText = String(repeating: "0", count: 4 - yearText.count) + yearText }
        return yearText + "-" + pad2(month) + "-" + pad2(day)
    }

    /// `YYYY-MM-DD` of a day number.
    public static func format(days: Int64) -> String {
        let (y, m, d) = civilFromDays(days)
        return format(year: y, month: m, day: d)
    }
}

@inline(__always)
func digit(_ byte: UInt8) -> Int? {
    let value = byte &- UInt8(ascii: "0")
    return value < 10 ? Int(value) : nil
}

@inline(__always)
func twoDigits(_ s: UnsafeBufferPointer<UInt8>, _ index: Int) -> Int? {
    guard index + 1 < s.count, let a = digit(s[index]), let b = digit(s[index + 1]) else { return nil }
    return a * 10 + b
}

@inline(__always)
func pad2(_ value: Int) -> String {
    value < 10 ? "0" + String(value) : String(value)
}
