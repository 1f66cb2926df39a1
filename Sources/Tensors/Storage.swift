import Foundation
import CAllocator

/// A contiguous, owned Float32 buffer. Reference type: tensors that are views (reshape) share one.
public final class Storage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    /// Keeps freed tensor buffers in the allocator instead of returning them to the kernel: without
    /// this, every large temporary is a fresh mmap whose pages the kernel must zero (measured: ~8 % of
    /// a training step in clear_page).
    private static let tuneAllocator: Void = {
        l2s_keep_freed_memory()
    }()

    private let capacityBytes: Int

    /// Uninitialised storage of `count` floats (64-byte aligned for SIMD and BLAS).
    public init(uninitializedCount count: Int) {
        precondition(count >= 0, "negative element count")
        _ = Storage.tuneAllocator
        self.count = count
        let bytes = BufferPool.roundedSize(max(count, 1) * 4)
        capacityBytes = bytes
        let raw = BufferPool.shared.take(bytes) ?? UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        self.pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    /// Storage filled with `value`.
    public convenience init(count: Int, repeating value: Float) {
        self.init(uninitializedCount: count)
        pointer.update(repeating: value, count: count)
    }

    deinit { BufferPool.shared.give(UnsafeMutableRawPointer(pointer), bytes: capacityBytes) }

    public var buffer: UnsafeMutableBufferPointer<Float> { .init(start: pointer, count: count) }
}

/// Memory the engine keeps for reuse after tensors are freed: large buffers by size class (up to
/// 3 GB idle) and the allocator's free heap (up to 1 GB untrimmed). A process that builds many
/// differently shaped models one after another (the config fuzzer; a session that switches models)
/// drains it between them, so its RSS reflects the model in use rather than every model before it.
public enum MemoryPool {
    /// Bytes of freed tensor buffers held for reuse.
    public static var idleBytes: Int { BufferPool.shared.idle }

    /// Returns the idle buffers and the allocator's free heap to the system.
    public static func drain() {
        BufferPool.shared.drain()
        l2s_release_free_memory()
    }
}

/// Recycles large buffers by size class. Big temporaries (attention scores, im2col columns) are
/// allocated and freed every op; from the kernel each fresh one costs page faults and zeroing
/// (measured: 21 % of an attention benchmark in clear_page). Small buffers go straight to malloc.
final class BufferPool: @unchecked Sendable {
    static let shared = BufferPool()
    /// Buffers below this go to malloc directly.
    static let minPooledBytes = 256 << 10
    /// Most bytes kept idle in the pool; beyond it freed buffers are released.
    static let maxIdleBytes = 3 << 30

    private var free: [Int: [UnsafeMutableRawPointer]] = [:]
    private var idleBytes = 0
    private var lock = pthread_mutex_t()

    init() { pthread_mutex_init(&lock, nil) }

    /// Size classes 1/8 of a power of two apart, so a reused buffer wastes at most 12.5 %.
    static func roundedSize(_ bytes: Int) -> Int {
        guard bytes >= minPooledBytes else { return bytes }
        let top = Int.bitWidth - 1 - bytes.leadingZeroBitCount
        let step = 1 << (top - 3)
        return (bytes + step - 1) / step * step
    }

    func take(_ bytes: Int) -> UnsafeMutableRawPointer? {
        guard bytes >= BufferPool.minPooledBytes else { return nil }
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        guard let p = free[bytes]?.popLast() else { return nil }
        idleBytes -= bytes
        return p
    }

    /// Bytes of freed buffers held for reuse.
    var idle: Int {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return idleBytes
    }

    /// Releases every idle buffer.
    func drain() {
        pthread_mutex_lock(&lock)
        let buffers = free.values.flatMap { $0 }
        free = [:]
        idleBytes = 0
        pthread_mutex_unlock(&lock)
        for p in buffers { p.deallocate() }
    }

    func give(_ p: UnsafeMutableRawPointer, bytes: Int) {
        if bytes >= BufferPool.minPooledBytes {
            pthread_mutex_lock(&lock)
            if idleBytes + bytes <= BufferPool.maxIdleBytes {
                free[bytes, default: []].append(p)
                idleBytes += bytes
                pthread_mutex_unlock(&lock)
                return
            }
            pthread_mutex_unlock(&lock)
        }
        p.deallocate()
    }
}
