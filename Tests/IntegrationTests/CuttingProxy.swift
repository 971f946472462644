import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
import Contract
import KPIModel
import StreamRuntime
import WarehouseSink
import KPIStore
import DataGenerator
import RedisWire
import RedisClient
import PostgresClient
import Dashboard

/// A TCP proxy on loopback in front of a real server that cuts connections part-way through the
/// server's replies: the n-th accepted connection (while `cuts` remain) forwards the server's first
/// `cutAfter(n)` bytes to the client, then closes both sockets. Requests always pass whole. The
/// fault a lost connection causes in the middle of a large reply, on demand.
final class CuttingProxy: Sendable {
    let port: Int
    private let listener: Int32
    private let upstreamPort: Int
    private let state: Mutex<(cuts: Int, accepted: Int, closed: Bool)>
    private let cutAfter: @Sendable (Int) -> Int

    init(upstreamPort: Int, cuts: Int, cutAfter: @escaping @Sendable (Int) -> Int) throws {
        self.upstreamPort = upstreamPort
        self.cutAfter = cutAfter
        state = Mutex((cuts, 0, false))
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else { throw POSIXError(.EADDRINUSE) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    /// Connections accepted so far.
    var accepted: Int { state.withLock { $0.accepted } }

    func close() {
        state.withLock { $0.closed = true }
        // Wakes the accept loop, which closes the descriptor itself: closed here, its number could
        // be reused by another test's listening socket before the loop stops calling accept on it.
        shutdown(listener, Int32(SHUT_RDWR))
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if state.withLock({ $0.closed }) {
                    Glibc.close(listener)
                    return
                }
                continue
            }
            let limit: Int? = state.withLock { state in
                state.accepted += 1
                guard state.cuts > 0 else { return nil }
                state.cuts -= 1
                return cutAfter(state.accepted)
            }
            let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = UInt16(upstreamPort).bigEndian
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard connected == 0 else {
                Glibc.close(client); Glibc.close(server)
                continue
            }
            let pair = SocketPair(client, server)
            Thread.detachNewThread { Self.pump(from: client, to: server, limit: nil, pair: pair) }
            Thread.detachNewThread { Self.pump(from: server, to: client, limit: limit, pair: pair) }
        }
    }

    /// Copies bytes until either side closes, or `limit` bytes went through (then closes both).
    /// The two sockets of one proxied connection, closed once both directions are done: a
    /// descriptor closed early could be reused by another connection of the test process (a
    /// PostgreSQL connection of another test) before the other direction's shutdown reached it.
    final class SocketPair: Sendable {
        let sockets: (Int32, Int32)
        private let open = Mutex(2)
        init(_ a: Int32, _ b: Int32) { sockets = (a, b) }

        /// Ends both directions; the second caller closes both descriptors.
        func finish() {
            shutdown(sockets.0, Int32(SHUT_RDWR))
            shutdown(sockets.1, Int32(SHUT_RDWR))
            let last = open.withLock { count -> Bool in
                count -= 1
                return count == 0
            }
            if last {
                Glibc.close(sockets.0)
                Glibc.close(sockets.1)
            }
        }
    }

    private static func pump(from source: Int32, to destination: Int32, limit: Int?, pair: SocketPair) {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        var sent = 0
        while true {
            let wanted = limit.map { min(buffer.count, $0 - sent) } ?? buffer.count
            if wanted <= 0 { break }
            let count = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, wanted) }
            if count <= 0 { break }
            var offset = 0
            while offset < count {
                // send(MSG_NOSIGNAL): a peer that closed first must not raise SIGPIPE in the test process.
                let written = buffer.withUnsafeBytes { send(destination, $0.baseAddress! + offset, count - offset, Int32(MSG_NOSIGNAL)) }
                if written <= 0 { break }
                offset += written
            }
            sent += count
        }
        pair.finish()
    }
}
