import Foundation
import Testing
@testable import Tensors

/// Plain SGD written out here (p ← p − lr·∂L/∂p), so these tests depend on the layers and autodiff only.
private func sgdStep(_ module: Module, lr: Float) {
    for p in module.parameters {
        guard let g = p.grad else { continue }
        let pp = p.pointer, pg = g.pointer
        for i in 0..<p.count { pp[i] -= lr * pg[i] }
    }
    module.zeroGrad()
}

private func mse(_ a: Tensor, _ b: Tensor) -> Tensor { (a - b).square().mean() }

private final class MLP: Module {
    var fc1: Linear
    var fc2: Linear
    init(rng: inout RNG) {
        fc1 = Linear(2, 32, rng: &rng)
        fc2 = Linear(32, 1, rng: &rng)
        super.init()
    }
    func callAsFunction(_ x: Tensor) -> Tensor { fc2(fc1(x).silu()) }
}

private final class ConvNet: Module {
    var conv1: Conv2d
    var norm: GroupNorm
    var conv2: Conv2d
    init(rng: inout RNG) {
        conv1 = Conv2d(1, 8, kernelSize: 3, padding: 1, rng: &rng)
        norm = GroupNorm(groups: 2, channels: 8)
        conv2 = Conv2d(8, 1, kernelSize: 3, padding: 1, rng: &rng)
        super.init()
    }
    func callAsFunction(_ x: Tensor) -> Tensor { conv2(norm(conv1(x)).silu()) }
}

@Suite("training")
struct TrainingTests {
    @Test func mlpFitsASmoothFunction() {
        var rng = RNG(seed: 1)
        let net = MLP(rng: &rng)
        // y = sin(2·x0) + x1², 64 points in [−1, 1]².
        let x = Tensor.rand([64, 2], rng: &rng, low: -1, high: 1)
        let y = Tensor((0..<64).map { sin(2 * x[$0, 0]) + x[$0, 1] * x[$0, 1] }, shape: [64, 1])
        var losses: [Float] = []
        for _ in 0..<300 {
            let loss = mse(net(x), y)
            losses.append(loss.item)
            loss.backward()
            sgdStep(net, lr: 0.2)
        }
        #expect(losses.last! < 0.1 * losses.first!, "loss \(losses.first!) → \(losses.last!)")
        #expect(losses.last! < 0.05)
    }

    @Test func convNetLearnsABlur() {
        var rng = RNG(seed: 2)
        let net = ConvNet(rng: &rng)
        // Target: a 3×3 box blur of the input (zero padding), which the net can represent.
        let x = Tensor.randn([4, 1, 8, 8], rng: &rng)
        let box = Tensor(repeating: 1 / 9, shape: [1, 1, 3, 3])
        let target = conv2d(x, weight: box, bias: nil, padding: 1)
        var losses: [Float] = []
        for _ in 0..<150 {
            let loss = mse(net(x), target)
            losses.append(loss.item)
            loss.backward()
            sgdStep(net, lr: 0.1)
        }
        #expect(losses.last! < 0.1 * losses.first!, "loss \(losses.first!) → \(losses.last!)")
        #expect(losses.suffix(10).reduce(0, +) < losses.prefix(10).reduce(0, +))
    }
}
