import Foundation

/// One entry on the autodiff tape: the inputs an op read and the pullback that maps the gradient of
/// its output to gradients of those inputs (nil where an input needs none). Pullbacks run with grad
/// recording off, so they can use the ordinary ops.
public final class Node {
    let inputs: [Tensor]
    let pullback: (Tensor) -> [Tensor?]
    let name: String

    init(name: String, inputs: [Tensor], pullback: @escaping (Tensor) -> [Tensor?]) {
        self.name = name
        self.inputs = inputs
        self.pullback = pullback
    }
}

/// Whether ops record onto the tape. Thread-local: a sampler thread can run without grad while another
/// thread trains. Default: recording on.
public enum GradMode {
    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k, nil)
        return k
    }()

    /// True when ops on this thread record tape nodes.
    public static var isEnabled: Bool { pthread_getspecific(key) == nil }

    /// Runs `body` with recording off on this thread: no nodes, no saved activations.
    public static func withoutGrad<T>(_ body: () throws -> T) rethrows -> T {
        let previous = pthread_getspecific(key)
        pthread_setspecific(key, UnsafeRawPointer(bitPattern: 1))
        defer { pthread_setspecific(key, previous) }
        return try body()
    }

    /// Runs `body` with recording on (e.g. a steering step inside a no-grad sampler loop).
    public static func withGrad<T>(_ body: () throws -> T) rethrows -> T {
        let previous = pthread_getspecific(key)
        pthread_setspecific(key, nil)
        defer { pthread_setspecific(key, previous) }
        return try body()
    }
}

/// Shorthand for `GradMode.withoutGrad`.
public func noGrad<T>(_ body: () throws -> T) rethrows -> T { try GradMode.withoutGrad(body) }

extension Tensor {
    /// Attaches a tape node to an op's result when recording is on and any input needs a gradient.
    @inline(__always)
    func recorded(_ name: String, _ inputs: [Tensor], _ pullback: @escaping (Tensor) -> [Tensor?]) -> Tensor {
        if GradMode.isEnabled, inputs.contains(where: { $0.requiresGrad }) {
            node = Node(name: name, inputs: inputs, pullback: pullback)
        }
        return self
    }

    /// Reverse-mode sweep from this tensor. `seed` defaults to ones (so a scalar loss gets d/d = 1).
    /// Leaves with `isLeafRequiringGrad` accumulate into `grad`. The graph is released afterwards
    /// unless `retainGraph` is set.
    public func backward(seed: Tensor? = nil, retainGraph: Bool = false) {
        let order = topologicalOrder()
        var grads: [ObjectIdentifier: Tensor] = [:]
        grads[ObjectIdentifier(self)] = seed ?? Tensor(ones: shape)
        GradMode.withoutGrad {
            for t in order.reversed() {
                guard let g = grads.removeValue(forKey: ObjectIdentifier(t)) else { continue }
                guard let node = t.node else {
                    if t.isLeafRequiringGrad { t.accumulateGrad(g) }
                    continue
                }
                let inputGrads = node.pullback(g)
                precondition(inputGrads.count == node.inputs.count, "pullback of \(node.name) returned wrong arity")
                for (input, gi) in zip(node.inputs, inputGrads) {
                    guard let gi, input.requiresGrad else { continue }
                    precondition(gi.count == input.count,
                                 "pullback of \(node.name) gave grad \(gi.shape) for input \(input.shape)")
                    let id = ObjectIdentifier(input)
                    if let existing = grads[id] {
                        grads[id] = existing.adding(gi)
                    } else {
                        grads[id] = gi.shape == input.shape ? gi : gi.reshaped(input.shape)
                    }
                }
                if !retainGraph { t.node = nil }
            }
        }
    }

    private func accumulateGrad(_ g: Tensor) {
        let g = g.shape == shape ? g : g.reshaped(shape)
        if let existing = grad {
            let p = existing.pointer, q = g.pointer
            for i in 0..<count { p[i] += q[i] }
        } else {
            grad = g.copy()
        }
    }

    /// Nodes reachable from self, inputs before users (iterative DFS: deep graphs don't overflow the stack).
    private func topologicalOrder() -> [Tensor] {
        var order: [Tensor] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Tensor, Bool)] = [(self, false)]
        while let (t, expanded) = stack.popLast() {
            if expanded { order.append(t); continue }
            let id = ObjectIdentifier(t)
            if visited.contains(id) { continue }
            visited.insert(id)
            stack.append((t, true))
            if let node = t.node {
                for input in node.inputs where input.requiresGrad && !visited.contains(ObjectIdentifier(input)) {
                    stack.append((input, false))
                }
            }
        }
        return order
    }

    /// Element-wise sum of two same-count tensors into a new tensor, without autodiff (gradient
    /// accumulation; never in place, since pullbacks may hand the same gradient to several inputs).
    func adding(_ other: Tensor) -> Tensor {
        let out = Tensor(uninitialized: shape)
        let a = pointer, b = other.pointer, o = out.pointer
        parallelFor(count, grain: 1 << 16) { r in
            for i in r { o[i] = a[i] + b[i] }
        }
        return out
    }
}

/// Evaluates `f` with gradient recording on for `inputs` (plain tensors, e.g. a latent) and returns
/// its value and d f / d input for each input (zeros where f does not depend on it). The inputs'
/// own `requiresGrad` and `grad` are restored afterwards. `f` must return a one-element tensor.
public func valueAndGradients(at inputs: [Tensor], _ f: ([Tensor]) -> Tensor) -> (value: Tensor, gradients: [Tensor]) {
    let saved = inputs.map { ($0.grad, $0.isLeafRequiringGrad) }
    defer { for (t, s) in zip(inputs, saved) { t.grad = s.0; t.isLeafRequiringGrad = s.1 } }
    for t in inputs { t.grad = nil; t.isLeafRequiringGrad = true }
    let value = GradMode.withGrad { f(inputs) }
    precondition(value.count == 1, "valueAndGradients needs a scalar output, got \(value.shape)")
    value.backward()
    return (value.detached(), inputs.map { $0.grad ?? Tensor(zeros: $0.shape) })
}
