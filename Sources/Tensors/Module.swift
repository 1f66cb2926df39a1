import Foundation

/// Base class of every network part that owns parameters.
///
/// The parameter tree is found by reflection over stored properties, so a property's name IS its
/// checkpoint key segment: `var conv1: Conv2d` holding `var weight: Tensor` is `conv1.weight`, an
/// array property `var resnets: [ResnetBlock2D]` gives `resnets.0.…`, and optionals that are nil are
/// skipped. This is what lets diffusers/transformers state dicts load with no renaming table.
/// Properties whose names start with `_` are not part of the tree (caches, config copies).
open class Module {
    public init() {}

    /// Whether dropout-style layers are in training mode (set through `train()`/`eval()`).
    public internal(set) var isTraining = false

    /// Visits direct children: (key, module) for sub-modules and (key, tensor) for parameters.
    final func children() -> [(String, Any)] {
        var out: [(String, Any)] = []
        var mirror: Mirror? = Mirror(reflecting: self)
        var chain: [Mirror] = []
        while let m = mirror { chain.append(m); mirror = m.superclassMirror }
        for m in chain.reversed() {
            for child in m.children {
                guard let label = child.label, !label.hasPrefix("_") else { continue }
                let key = label.hasPrefix("$__lazy_storage_$_") ? String(label.dropFirst(18)) : label
                Module.flatten(key, child.value, into: &out)
            }
        }
        return out
    }

    private static func flatten(_ key: String, _ value: Any, into out: inout [(String, Any)]) {
        switch value {
        case let t as Tensor: out.append((key, t))
        case let m as Module: out.append((key, m))
        case let array as [Any]:
            for (i, v) in array.enumerated() { flatten("\(key).\(i)", v, into: &out) }
        default:
            let mirror = Mirror(reflecting: value)
            if mirror.displayStyle == .optional, let wrapped = mirror.children.first?.value {
                flatten(key, wrapped, into: &out)
            }
        }
    }

    /// All parameters with their full dotted names, in declaration order.
    public final func namedParameters(prefix: String = "") -> [(name: String, tensor: Tensor)] {
        var out: [(String, Tensor)] = []
        for (key, value) in children() {
            let name = prefix.isEmpty ? key : "\(prefix).\(key)"
            if let t = value as? Tensor { out.append((name, t)) }
            else if let m = value as? Module { out.append(contentsOf: m.namedParameters(prefix: name).map { ($0.name, $0.tensor) }) }
        }
        return out
    }

    /// All parameters (declaration order).
    public final var parameters: [Tensor] { namedParameters().map(\.tensor) }

    /// All sub-modules including self.
    public final func modules() -> [Module] {
        var out: [Module] = [self]
        for (_, value) in children() { if let m = value as? Module { out.append(contentsOf: m.modules()) } }
        return out
    }

    /// Number of scalar parameters.
    public final var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }

    /// Marks every parameter as needing (or not needing) gradients.
    public final func requiresGrad(_ flag: Bool) {
        for p in parameters { p.requiresGrad = flag }
    }

    /// Training mode for this module and all sub-modules (dropout on).
    public final func train(_ on: Bool = true) { for m in modules() { m.isTraining = on } }

    /// Evaluation mode (dropout off).
    public final func eval() { train(false) }

    /// Clears every parameter's gradient.
    public final func zeroGrad() { for p in parameters { p.grad = nil } }
}

/// Fills a tensor with uniform values in ±bound (PyTorch's default Linear/Conv initialisation uses
/// bound = 1/√fan_in).
public func uniformInit(_ shape: [Int], bound: Float, rng: inout RNG) -> Tensor {
    let t = ParameterInitialization.isDeferred ? Tensor(uninitialized: shape) : Tensor.rand(shape, rng: &rng, low: -bound, high: bound)
    t.requiresGrad = true
    return t
}

/// Random initialisation of new parameters, or none for modules that a strict checkpoint load will
/// overwrite whole: drawing SD 1.5's 1.07 G random numbers only to replace them took most of a
/// folder load. Thread-local, like `GradMode`.
public enum ParameterInitialization {
    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k, nil)
        return k
    }()

    /// True inside `deferred`: `uniformInit` and `Embedding` leave their values uninitialised.
    public static var isDeferred: Bool { pthread_getspecific(key) != nil }

    /// Builds modules without drawing initial values. Only for modules whose every parameter is then
    /// loaded by a strict load (missing keys are an error), since the values are garbage until then.
    public static func deferred<T>(_ body: () throws -> T) rethrows -> T {
        let previous = pthread_getspecific(key)
        pthread_setspecific(key, UnsafeRawPointer(bitPattern: 1))
        defer { pthread_setspecific(key, previous) }
        return try body()
    }
}

/// A parameter-free list entry that keeps indices aligned with PyTorch's `nn.Sequential`/`ModuleList`
/// (activation and dropout slots), so `fc.4.weight` stays `fc.4.weight`.
public final class Placeholder: Module {}
