#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A serial executor that runs every job on one dedicated OS thread.
///
/// hiredis and libpq are blocking C libraries. An actor whose `unownedExecutor` is a
/// `ConnectionThread` runs its methods (and therefore its blocking C calls) on that thread, so
/// Swift's cooperative pool never waits on a socket. The same object is a `TaskExecutor`, so a
/// task can be pinned to it as well.
///
/// `@unchecked Sendable`: the mutable state (`jobs`, `stopping`) is touched only while holding
/// `mutex`; `thread` is written once in `init`, before any other thread can see `self`.
public final class ConnectionThread: SerialExecutor, TaskExecutor, @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private var jobs: [UnownedJob] = []
    private var stopping = false
    private var thread = pthread_t()
    /// A name for debugging.
    public let name: String

    /// Starts the thread at once; it lives until `shutdown()`.
    public init(name: String) {
        self.name = name
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        pthread_cond_init(condition, nil)
        jobs.reserveCapacity(16)
        let retained = Unmanaged.passRetained(self).toOpaque()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        pthread_attr_setstacksize(&attributes, 1 << 20)
        let rc = pthread_create(&thread, &attributes, { context in
            // The thread owns one reference for as long as it runs.
            let executor = Unmanaged<ConnectionThread>.fromOpaque(context!).takeRetainedValue()
            executor.runLoop()
            return nil
        }, retained)
        pthread_attr_destroy(&attributes)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        pthread_detach(thread)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        pthread_mutex_lock(mutex)
        jobs.append(unowned)
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// True when called on this executor's thread.
    public var isCurrent: Bool {
        pthread_equal(pthread_self(), thread) != 0
    }

    public func checkIsolated() {
        precondition(isCurrent, "not on connection thread \(name)")
    }

    /// Lets the thread finish the jobs already queued, then exit. Idempotent.
    public func shutdown() {
        pthread_mutex_lock(mutex)
        stopping = true
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
    }

    private func runLoop() {
        let serial = asUnownedSerialExecutor()
        let task = asUnownedTaskExecutor()
        var batch: [UnownedJob] = []
        batch.reserveCapacity(16)
        while true {
            pthread_mutex_lock(mutex)
            while jobs.isEmpty && !stopping {
                pthread_cond_wait(condition, mutex)
            }
            if jobs.isEmpty && stopping {
                pthread_mutex_unlock(mutex)
                return
            }
            swap(&batch, &jobs)
            pthread_mutex_unlock(mutex)
            for job in batch {
                job.runSynchronously(isolatedTo: serial, taskExecutor: task)
            }
            batch.removeAll(keepingCapacity: true)
        }
    }
}
