import Foundation

/// An n-dimensional Float32 array, contiguous and row-major, that can take part in autodiff.
///
/// A tensor is a leaf (created directly; set `requiresGrad` to have `backward()` fill `grad`) or the
/// result of an op, in which case it carries the tape node that knows how to send gradients back.
public final class Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let storage: Storage
    /// Accumulated gradient of a leaf after `backward()`.
    public var grad: Tensor?
    /// Set on leaves (parameters, latents) whose gradient is wanted.
    public var isLeafRequiringGrad: Bool = false
    /// The tape entry of an op result; nil for leaves and for results computed without grad.
    public internal(set) var node: Node?

    /// Number of elements.
    public var count: Int { storage.count }
    public var rank: Int { shape.count }
    public var pointer: UnsafeMutablePointer<Float> { storage.pointer }

    /// True when gradients flow to or through this tensor.
    public var requiresGrad: Bool {
        get { isLeafRequiringGrad || node != nil }
        set { isLeafRequiringGrad = newValue }
    }

    public init(shape: [Int], storage: Storage) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        precondition(shape.reduce(1, *) == storage.count, "shape \(shape) does not match \(storage.count) elements")
        self.shape = shape
        self.storage = storage
    }

    /// Uninitialised tensor (kernels write every element).
    public convenience init(uninitialized shape: [Int]) {
        self.init(shape: shape, storage: Storage(uninitializedCount: shape.reduce(1, *)))
    }

    public convenience init(zeros shape: [Int]) {
        self.init(shape: shape, storage: Storage(count: shape.reduce(1, *), repeating: 0))
    }

    public convenience init(ones shape: [Int]) {
        self.init(shape: shape, storage: Storage(count: shape.reduce(1, *), repeating: 1))
    }

    public convenience init(repeating value: Float, shape: [Int]) {
        self.init(shape: shape, storage: Storage(count: shape.reduce(1, *), repeating: value))
    }

    public convenience init(_ values: [Float], shape: [Int]? = nil) {
        let shape = shape ?? [values.count]
        precondition(shape.reduce(1, *) == values.count, "shape \(shape) does not match \(values.count) values")
        self.init(uninitialized: shape)
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: values.count) }
    }

    /// A 0-d tensor holding one value.
    public convenience init(scalar: Float) { self.init([scalar], shape: []) }

    /// Standard normal samples from a seeded stream.
    public static func randn(_ shape: [Int], rng: inout RNG, std: Float = 1) -> Tensor {
        let t = Tensor(uninitialized: shape)
        rng.fillNormal(t.pointer, t.count, std: std)
        return t
    }

    /// Uniform samples in [low, high).
    public static func rand(_ shape: [Int], rng: inout RNG, low: Float = 0, high: Float = 1) -> Tensor {
        let t = Tensor(uninitialized: shape)
        let p = t.pointer
        for i in 0..<t.count { p[i] = low + (high - low) * rng.uniform() }
        return t
    }

    /// The elements as an array (row-major).
    public var array: [Float] { Array(storage.buffer) }

    /// The single element of a one-element tensor.
    public var item: Float {
        precondition(count == 1, "item() needs exactly one element, shape is \(shape)")
        return pointer[0]
    }

    /// Element at a multi-index (slow; for tests and small inspections).
    public subscript(_ index: Int...) -> Float {
        get { pointer[flatIndex(index)] }
        set { pointer[flatIndex(index)] = newValue }
    }

    private func flatIndex(_ index: [Int]) -> Int {
        precondition(index.count == shape.count, "index rank \(index.count) ≠ tensor rank \(shape.count)")
        var flat = 0
        for (i, d) in zip(index, shape) {
            precondition(i >= 0 && i < d, "index \(index) out of range for shape \(shape)")
            flat = flat * d + i
        }
        return flat
    }

    /// A new leaf with the same values and no tape history.
    public func detached() -> Tensor { Tensor(shape: shape, storage: storage) }

    /// A deep copy (own storage, no history).
    public func copy() -> Tensor {
        let t = Tensor(uninitialized: shape)
        t.pointer.update(from: pointer, count: count)
        return t
    }

    /// Overwrites this tensor's values with `other`'s (same element count); no autodiff.
    public func assign(_ other: Tensor) {
        precondition(other.count == count, "assign: \(other.shape) into \(shape)")
        pointer.update(from: other.pointer, count: count)
    }

    /// Resets the accumulated gradient.
    public func zeroGrad() { grad = nil }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let preview = (0..<min(count, 8)).map { String(format: "%.4g", pointer[$0]) }.joined(separator: ", ")
        return "Tensor(\(shape), [\(preview)\(count > 8 ? ", …" : "")])"
    }
}

/// Strides (in elements) of a contiguous row-major shape.
@inline(__always)
public func contiguousStrides(_ shape: [Int]) -> [Int] {
    var strides = [Int](repeating: 1, count: shape.count)
    var s = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) {
        strides[i] = s
        s *= shape[i]
    }
    return strides
}

/// Resolves a possibly negative axis against a rank.
@inline(__always)
public func normalizeAxis(_ axis: Int, rank: Int) -> Int {
    let a = axis < 0 ? axis + rank : axis
    precondition(a >= 0 && a < max(rank, 1), "axis \(axis) out of range for rank \(rank)")
    return a
}
