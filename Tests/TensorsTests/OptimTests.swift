import Foundation
import Testing
@testable import Tensors

/// A leaf parameter with the given values.
private func parameter(_ values: [Float], shape: [Int]? = nil) -> Tensor {
    let t = Tensor(values, shape: shape)
    t.requiresGrad = true
    return t
}

private func close(_ a: [Float], _ b: [Double], tolerance: Double = 1e-6,
                   sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(a.count == b.count, sourceLocation: sourceLocation)
    for (x, y) in zip(a, b) {
        #expect(abs(Double(x) - y) <= tolerance * max(1, abs(y)), "\(a) vs \(b)", sourceLocation: sourceLocation)
    }
}

@Suite("Optimisers")
struct OptimizerTests {
    /// torch.optim.AdamW's update, written out in Double.
    private func referenceAdamW(_ p0: [Double], grads: [[Double]], lr: Double, beta1: Double, beta2: Double,
                                eps: Double, wd: Double) -> [[Double]] {
        var p = p0, m = [Double](repeating: 0, count: p0.count), v = m
        var out: [[Double]] = []
        for (t, g) in grads.enumerated() {
            let step = Double(t + 1)
            for j in p.indices {
                p[j] *= 1 - lr * wd
                m[j] = beta1 * m[j] + (1 - beta1) * g[j]
                v[j] = beta2 * v[j] + (1 - beta2) * g[j] * g[j]
                let mHat = m[j] / (1 - pow(beta1, step))
                let denom = (v[j] / (1 - pow(beta2, step))).squareRoot() + eps
                p[j] -= lr * mHat / denom
            }
            out.append(p)
        }
        return out
    }

    @Test func adamWMatchesPyTorchFormulas() {
        let p = parameter([1, -2, 0.5, 3], shape: [2, 2])
        let grads: [[Float]] = [[0.1, -0.2, 0.3, 0], [-0.5, 0.25, 0.3, 1e-3], [2, 0.01, -0.3, -4]]
        let opt = AdamW(parameters: [p], lr: 0.1, betas: (0.9, 0.99), eps: 1e-8, weightDecay: 0.05)
        let expected = referenceAdamW([1, -2, 0.5, 3], grads: grads.map { $0.map(Double.init) }, lr: 0.1,
                                      beta1: Double(Float(0.9)), beta2: Double(Float(0.99)), eps: 1e-8, wd: 0.05)
        for (g, e) in zip(grads, expected) {
            p.grad = Tensor(g, shape: [2, 2])
            opt.step()
            close(p.array, e)
        }
        #expect(opt.stepCount(0) == 3)
        // First step by hand: m̂ = g, v̂ = g², so p ← p(1 − lr·wd) − lr·g/(|g| + ε).
        let q = parameter([1])
        q.grad = Tensor([0.1])
        AdamW(parameters: [q], lr: 0.1, weightDecay: 0.01).step()
        close(q.array, [0.999 - 0.1 * 0.1 / (0.1 + 1e-8)])
    }

    @Test func parametersWithoutGradAreSkipped() {
        let a = parameter([1, 2]), b = parameter([3])
        let opt = AdamW(parameters: [a, b], lr: 0.1)
        a.grad = Tensor([1, 1])
        opt.step()
        #expect(b.array == [3])
        #expect(opt.stepCount(1) == 0)
        b.grad = Tensor([1])
        a.grad = nil
        let aBefore = a.array
        opt.step()
        #expect(a.array == aBefore)
        #expect(opt.stepCount(0) == 1 && opt.stepCount(1) == 1)
        close(b.array, [3 * (1 - 0.1 * 0.01) - 0.1])   // b's own first step: bias correction at t = 1
        opt.zeroGrad()
        #expect(a.grad == nil && b.grad == nil)
    }

    @Test func adamWMinimisesAQuadratic() {
        let target = Tensor([3, -1, 0.5, 2], shape: [2, 2])
        let p = parameter([0, 0, 0, 0], shape: [2, 2])
        let opt = AdamW(parameters: [p], lr: 0.05, weightDecay: 0)
        var loss: Float = .infinity
        for _ in 0..<600 {
            opt.zeroGrad()
            let l = (p - target).square().sum()
            l.backward()
            loss = l.item
            opt.step()
        }
        #expect(loss < 1e-4)
        close(p.array, target.array.map(Double.init), tolerance: 1e-2)
    }

    @Test func sgdMatchesPyTorchFormulas() {
        // momentum 0.9, dampening 0.1, weight decay 0.1, lr 0.5; buffer starts as the first d.
        let p = parameter([1, -1])
        let opt = SGD(parameters: [p], lr: 0.5, momentum: 0.9, dampening: 0.1, weightDecay: 0.1)
        let grads: [[Double]] = [[0.2, 0.4], [-0.1, 0.3], [0.5, -0.2]]
        var ref: [Double] = [1, -1], buf: [Double] = [0, 0]
        for (t, g) in grads.enumerated() {
            for j in 0..<2 {
                let d = g[j] + 0.1 * ref[j]
                buf[j] = t == 0 ? d : 0.9 * buf[j] + 0.9 * d
                ref[j] -= 0.5 * buf[j]
            }
            p.grad = Tensor(g.map(Float.init))
            opt.step()
            close(p.array, ref)
        }
        // By hand, first step: d = 0.2 + 0.1·1 = 0.3 → p = 1 − 0.5·0.3 = 0.85.
        let q = parameter([1])
        q.grad = Tensor([0.2])
        SGD(parameters: [q], lr: 0.5, momentum: 0.9, weightDecay: 0.1).step()
        close(q.array, [0.85])
        // Plain SGD and Nesterov.
        let r = parameter([2])
        let plain = SGD(parameters: [r], lr: 0.1)
        r.grad = Tensor([4])
        plain.step()
        close(r.array, [1.6])
        #expect(plain.state().map(\.0) == ["lr"])
        let n = parameter([1])
        let nesterov = SGD(parameters: [n], lr: 0.1, momentum: 0.5, nesterov: true)
        n.grad = Tensor([1]); nesterov.step()          // b = 1, d = 1 + 0.5 = 1.5 → 0.85
        n.grad = Tensor([1]); nesterov.step()          // b = 1.5, d = 1 + 0.75 → 0.675
        close(n.array, [0.675])
    }

    @Test func clipGradNormLikeTorch() {
        let a = parameter([0, 0]), b = parameter([0]), c = parameter([5])
        a.grad = Tensor([3, 4])
        b.grad = Tensor([12])
        let norm = clipGradNorm([a, b, c], maxNorm: 6.5)
        #expect(abs(norm - 13) < 1e-5)
        let k = Double(6.5) / (13 + 1e-6)
        close(a.grad!.array, [3 * k, 4 * k])
        close(b.grad!.array, [12 * k])
        #expect(c.grad == nil)
        // Under the limit: untouched.
        a.grad = Tensor([3, 4])
        #expect(abs(clipGradNorm([a], maxNorm: 10) - 5) < 1e-6)
        #expect(a.grad!.array == [3, 4])
        // Large tensors take the threaded reduction.
        let big = parameter([Float](repeating: 0, count: 200_000))
        big.grad = Tensor(repeating: 0.5, shape: [200_000])
        #expect(abs(clipGradNorm([big], maxNorm: 1) - Float(0.5 * 200_000.0.squareRoot())) < 1e-2)
        #expect(abs(Double(big.grad!.array.reduce(0) { $0 + $1 * $1 }).squareRoot() - 1) < 1e-3)
        // Non-finite norms are reported and leave gradients alone.
        a.grad = Tensor([.nan, 1])
        #expect(clipGradNorm([a], maxNorm: 1).isNaN)
        #expect(a.grad!.array[1] == 1)
    }

    @Test func warmupCosineValues() {
        let s = WarmupCosineSchedule(peak: 1e-3, warmupSteps: 10, totalSteps: 110, minLR: 1e-5)
        close([s.lr(at: 0), s.lr(at: 5), s.lr(at: 10)], [0, 5e-4, 1e-3], tolerance: 1e-9)
        close([s.lr(at: 60)], [1e-5 + (1e-3 - 1e-5) * 0.5], tolerance: 1e-9)
        close([s.lr(at: 35)], [1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + cos(Double.pi / 4))], tolerance: 1e-9)
        close([s.lr(at: 110), s.lr(at: 500)], [1e-5, 1e-5], tolerance: 1e-12)
        let noWarmup = WarmupCosineSchedule(peak: 2, warmupSteps: 0, totalSteps: 4)
        close((0...4).map { noWarmup.lr(at: $0) }, [2, 1 + 0.5.squareRoot(), 1, 1 - 0.5.squareRoot(), 0])
    }

    @Test func reduceLROnPlateauSequence() {
        var s = ReduceLROnPlateau(lr: 1, factor: 0.5, patience: 2)
        let lrs = [10, 9, 9, 9, 9, 8, 8, 8, 8, 8, 8].map { s.step(Float($0)) }
        #expect(lrs == [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25])
        #expect(s.best == 8)
        // Cooldown and the floor: patience 0, cooldown 1, minLR 0.3.
        var c = ReduceLROnPlateau(lr: 1, factor: 0.5, patience: 0, cooldown: 1, minLR: 0.3)
        #expect([5, 5, 5, 5, 5, 5].map { c.step($0) } == [1, 0.5, 0.5, 0.3, 0.3, 0.3])
        // A relative threshold: 0.95 is not an improvement on 1 by more than 10%.
        var t = ReduceLROnPlateau(lr: 1, factor: 0.1, patience: 0, threshold: 0.1)
        #expect([1, 0.95, 0.8].map { t.step($0) } == [1, 0.1, 0.1])
        // Checkpointable.
        let data = try! JSONEncoder().encode(s)
        #expect(try! JSONDecoder().decode(ReduceLROnPlateau.self, from: data) == s)
    }

    @Test func emaTracksAndCopies() throws {
        let p = parameter([1, 10])
        let ema = EMA(parameters: [p], decay: 0.9)
        p.assign(Tensor([2, 0]))
        ema.update()
        close(ema.shadow[0].array, [1.1, 9])
        ema.update()
        close(ema.shadow[0].array, [1.19, 8.1])
        #expect(ema.updates == 2)
        let target = Tensor(zeros: [2])
        ema.copyTo([target])
        #expect(target.array == ema.shadow[0].array)
        #expect(p.array == [2, 0])
        let other = EMA(parameters: [p], decay: 0.9)
        try other.loadState(Dictionary(uniqueKeysWithValues: ema.state()))
        #expect(other.shadow[0].array == ema.shadow[0].array && other.updates == 2)
        #expect(throws: OptimizerStateError.missingKey(optimizer: "EMA", key: "0.shadow")) {
            try other.loadState(["updates": Tensor(scalar: 1)])
        }
    }

    // MARK: Checkpoint and resume

    /// A small model whose gradients change every step; `b` gets no gradient before step 2.
    private struct Run {
        let a: Tensor
        let b: Tensor
        let optimizer: any Optimizer

        init(make: ([Tensor]) -> any Optimizer) {
            a = parameter(randomTensor([3, 4], seed: 1).array, shape: [3, 4])
            b = parameter(randomTensor([4], seed: 2).array)
            optimizer = make([a, b])
        }

        func train(steps: Range<Int>, schedule: WarmupCosineSchedule) {
            for s in steps {
                optimizer.zeroGrad()
                let x = randomTensor([5, 4], seed: 100 + UInt64(s))
                let y = s < 2 ? x.matmul(a, transposeOther: true) : x.matmul(a, transposeOther: true) + b.sum()
                y.square().mean().backward()
                clipGradNorm([a, b], maxNorm: 1)
                optimizer.lr = schedule.lr(at: s)
                optimizer.step()
            }
        }
    }

    @Test(arguments: ["AdamW", "SGD"])
    func resumeIsBitIdentical(kind: String) throws {
        let make: ([Tensor]) -> any Optimizer = kind == "AdamW"
            ? { AdamW(parameters: $0, lr: 0.01, weightDecay: 0.1) }
            : { SGD(parameters: $0, lr: 0.01, momentum: 0.9, weightDecay: 0.01) }
        let schedule = WarmupCosineSchedule(peak: 0.05, warmupSteps: 2, totalSteps: 8)
        let straight = Run(make: make)
        straight.train(steps: 0..<8, schedule: schedule)

        let dir = ioScratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let first = Run(make: make)
        first.train(steps: 0..<4, schedule: schedule)
        let model = dir.appendingPathComponent("model.safetensors").path
        let optim = dir.appendingPathComponent("optim.safetensors").path
        try writeSafetensors([("a", first.a), ("b", first.b)], to: model)
        try writeSafetensors(first.optimizer.state(), to: optim)

        let resumed = Run(make: make)
        let modelFile = try SafetensorsFile(path: model)
        resumed.a.assign(try modelFile.tensor("a"))
        resumed.b.assign(try modelFile.tensor("b"))
        try resumed.optimizer.loadState(try SafetensorsFile(path: optim).tensors())
        resumed.train(steps: 4..<8, schedule: schedule)

        #expect(resumed.a.array.map(\.bitPattern) == straight.a.array.map(\.bitPattern))
        #expect(resumed.b.array.map(\.bitPattern) == straight.b.array.map(\.bitPattern))
        #expect(resumed.a.array != first.a.array)
    }

    @Test func stateSnapshotIsACopyAndLoadRestoresLR() throws {
        let p = parameter([1, 2])
        let opt = AdamW(parameters: [p], lr: 0.1)
        p.grad = Tensor([1, 1])
        opt.step()
        let snapshot = opt.state()
        #expect(snapshot.map(\.0) == ["lr", "0.exp_avg", "0.exp_avg_sq", "0.step"])
        let saved = snapshot[1].1.array
        opt.step()
        #expect(snapshot[1].1.array == saved)
        opt.lr = 0.5
        try opt.loadState(snapshot)
        #expect(opt.lr == 0.1 && opt.stepCount(0) == 1)
    }

    @Test func loadStateRejectsMismatchesNamingTheKey() throws {
        let p = parameter([1, 2])
        let opt = AdamW(parameters: [p], lr: 0.1)
        p.grad = Tensor([1, 1])
        opt.step()
        let good = Dictionary(uniqueKeysWithValues: opt.state())
        func failure(_ edit: (inout [String: Tensor]) -> Void) -> OptimizerStateError? {
            var s = good
            edit(&s)
            do { try opt.loadState(s); return nil } catch let e as OptimizerStateError { return e } catch { return nil }
        }
        #expect(failure { $0["1.exp_avg"] = Tensor([0]) } == .unexpectedKey(optimizer: "AdamW", key: "1.exp_avg", parameterCount: 1))
        #expect(failure { $0["0.momentum_buffer"] = Tensor([0, 0]) }
            == .unexpectedKey(optimizer: "AdamW", key: "0.momentum_buffer", parameterCount: 1))
        #expect(failure { $0["0.exp_avg_sq"] = nil } == .missingKey(optimizer: "AdamW", key: "0.exp_avg_sq"))
        #expect(failure { $0["0.exp_avg"] = Tensor([0, 0, 0]) }
            == .shapeMismatch(optimizer: "AdamW", key: "0.exp_avg", expected: [2], found: [3]))
        guard case .invalidValue(_, "0.step", _)? = failure({ $0["0.step"] = Tensor(scalar: 1.5) }) else {
            Issue.record("fractional step accepted"); return
        }
        guard case .invalidValue(_, "lr", _)? = failure({ $0["lr"] = Tensor([1, 2]) }) else {
            Issue.record("non-scalar lr accepted"); return
        }
        #expect(failure { $0["0.exp_avg"] = Tensor([0, 0, 0]) }?.description.contains("0.exp_avg") == true)
        #expect(opt.stepCount(0) == 1)   // failed loads changed nothing
        #expect(throws: OptimizerStateError.duplicateKey(optimizer: "SGD", key: "lr")) {
            try SGD(parameters: [p], lr: 1).loadState([("lr", Tensor(scalar: 1)), ("lr", Tensor(scalar: 2))])
        }
    }
}

/// The engine's idle memory: freed large buffers are kept for reuse by size class until drained.
/// (A private pool: the shared one is used by every test running beside this one.)
@Suite struct MemoryPoolTests {
    @Test func freedLargeBuffersArePooledAndDrainReleasesThem() {
        let pool = BufferPool()
        let bytes = BufferPool.roundedSize(4 << 20)
        #expect(pool.take(bytes) == nil && pool.idle == 0)
        let a = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        let b = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        pool.give(a, bytes: bytes)
        pool.give(b, bytes: bytes)
        #expect(pool.idle == 2 * bytes)
        let reused = pool.take(bytes)
        #expect(reused == b && pool.idle == bytes)
        reused?.deallocate()
        pool.drain()
        #expect(pool.idle == 0 && pool.take(bytes) == nil)
        // Small buffers are never pooled.
        let small = UnsafeMutableRawPointer.allocate(byteCount: 1024, alignment: 64)
        pool.give(small, bytes: 1024)
        #expect(pool.idle == 0)
        MemoryPool.drain()   // the shared pool and the allocator's free heap: must not disturb live tensors
        let t = Tensor(repeating: 3, shape: [1 << 20])
        MemoryPool.drain()
        #expect(t.pointer[(1 << 20) - 1] == 3)
    }
}
