import Foundation
import Relations
import Tensors

/// A set of recorded samples held in memory, saved as safetensors shards.
public struct RelationDataset {
    public var maps: [Tensor] = []         // each [2, C, 16, 16]
    public var labels: [Int] = []
    public var steps: [Int] = []
    public var negative: [Bool] = []
    public var promptLabels: [Int] = []
    public var exampleIDs: [Int] = []

    public init() {}
    public var count: Int { labels.count }

    public mutating func append(_ s: RelationSample) {
        maps.append(s.maps); labels.append(s.label); steps.append(s.step)
        negative.append(s.negative); promptLabels.append(s.promptLabel); exampleIDs.append(s.exampleID)
    }

    public mutating func append(contentsOf other: RelationDataset) {
        maps += other.maps; labels += other.labels; steps += other.steps
        negative += other.negative; promptLabels += other.promptLabels; exampleIDs += other.exampleIDs
    }

    /// Writes one shard (maps in fp16, the per-sample columns in fp32).
    public func write(to path: String, metadata: [String: String] = [:]) throws {
        guard count > 0 else { return }
        let stacked = noGrad { Tensor.stack(maps, axis: 0) }
        func col(_ v: [Int]) -> Tensor { Tensor(v.map(Float.init)) }
        try writeSafetensors([("maps", stacked), ("labels", col(labels)), ("steps", col(steps)),
                              ("negative", col(negative.map { $0 ? 1 : 0 })), ("prompt_labels", col(promptLabels)),
                              ("example_ids", col(exampleIDs))], to: path, dtype: .f32, dtypes: ["maps": .f16],
                             metadata: metadata)
    }

    /// Reads a shard written by `write`.
    public static func read(_ path: String) throws -> RelationDataset {
        let f = try SafetensorsFile(path: path)
        let maps = try f.tensor("maps")
        func ints(_ k: String) throws -> [Int] { try f.tensor(k).array.map { Int($0) } }
        var d = RelationDataset()
        d.labels = try ints("labels"); d.steps = try ints("steps"); d.negative = try ints("negative").map { $0 != 0 }
        d.promptLabels = try ints("prompt_labels"); d.exampleIDs = try ints("example_ids")
        let n = d.labels.count
        let per = maps.count / max(n, 1)
        let shape = Array(maps.shape.dropFirst())
        d.maps = (0..<n).map { i in
            let t = Tensor(uninitialized: shape)
            t.pointer.update(from: maps.pointer + i * per, count: per)
            return t
        }
        return d
    }

    /// The samples at `indices`.
    public func subset(_ indices: [Int]) -> RelationDataset {
        var d = RelationDataset()
        d.maps = indices.map { maps[$0] }; d.labels = indices.map { labels[$0] }; d.steps = indices.map { steps[$0] }
        d.negative = indices.map { negative[$0] }; d.promptLabels = indices.map { promptLabels[$0] }
        d.exampleIDs = indices.map { exampleIDs[$0] }
        return d
    }

    /// Splits by example (all samples of one image on the same side): every `k`-th example to validation.
    public func split(validationEvery k: Int) -> (train: RelationDataset, validation: RelationDataset) {
        let held = (0..<count).filter { exampleIDs[$0] % k == 0 }
        let kept = (0..<count).filter { exampleIDs[$0] % k != 0 }
        return (subset(kept), subset(held))
    }
}

/// Settings of classifier training (the authors' SD recipe by default: AdamW wd 0.05, batch 64,
/// plateau LR ×0.5 after 5, early stopping after 10 epochs without improvement).
public struct ClassifierTrainingConfig: Codable, Equatable, Sendable {
    public var learningRate: Float = 1e-4
    public var weightDecay: Float = 0.05
    public var batchSize: Int = 64
    public var maxEpochs: Int = 100
    public var plateauPatience: Int = 5
    public var earlyStoppingPatience: Int = 10
    public var validationEvery: Int = 10
    public var seed: UInt64 = 0
    /// Mirror training maps at random: left–right (label left of ↔ right of) and top–bottom (above ↔
    /// below), each with probability ½ — the relation's geometry mirrored with the image.
    public var augmentFlips: Bool = false
    public init() {}
}

/// Mirrors item `b` of maps [B, …, H, W] in place along the width (`horizontal`) or height axis.
func mirror(_ maps: Tensor, item b: Int, horizontal: Bool) {
    let h = maps.shape[maps.rank - 2], w = maps.shape[maps.rank - 1]
    let perItem = maps.count / maps.shape[0], planes = perItem / (h * w)
    let base = maps.pointer + b * perItem
    for p in 0..<planes {
        let m = base + p * h * w
        if horizontal {
            for y in 0..<h { var i = y * w, j = y * w + w - 1; while i < j { swap(&m[i], &m[j]); i += 1; j -= 1 } }
        } else {
            for y in 0..<h / 2 { for x in 0..<w { swap(&m[y * w + x], &m[(h - 1 - y) * w + x]) } }
        }
    }
}

extension SpatialRelation {
    /// The class index after mirroring the image left–right or top–bottom.
    static func mirroredClass(_ index: Int, horizontal: Bool) -> Int {
        switch (index, horizontal) {
        case (3, true): return 4
        case (4, true): return 3
        case (0, false): return 1
        case (1, false): return 0
        default: return index
        }
    }
}

/// Held-out accuracy broken down the ways the method cares about.
public struct ClassifierReport: Codable, Sendable {
    public var epoch: Int
    public var trainLoss: Float
    public var validationLoss: Float
    public var accuracy: Double
    public var accuracyByStep: [Int: Double]
    public var accuracyPositive: Double
    public var accuracyNegative: Double
    /// Among negative-prompt samples, how often the prediction is the prompt's (wrong) relation.
    public var leakage: Double
}

/// Trains a relation classifier on recorded maps: cross-entropy, AdamW, ReduceLROnPlateau, early stopping;
/// keeps the weights of the best validation epoch.
public final class ClassifierTrainer {
    public let classifier: RelationClassifier
    public let config: ClassifierTrainingConfig
    public init(classifier: RelationClassifier, config: ClassifierTrainingConfig) {
        self.classifier = classifier
        self.config = config
    }

    func batchTensor(_ d: RelationDataset, _ idx: ArraySlice<Int>) -> (Tensor, [Int], [Int]) {
        let maps = Tensor.stack(idx.map { d.maps[$0] }, axis: 0)
        return (maps, idx.map { classifier.config.classifierStep(for: d.steps[$0]) }, idx.map { d.labels[$0] })
    }

    /// Loss and report on a dataset (eval mode, no tape).
    public func evaluate(_ d: RelationDataset, epoch: Int = 0, trainLoss: Float = 0) -> ClassifierReport {
        classifier.eval()
        var predictions: [Int] = []
        var loss = 0.0
        noGrad {
            var start = 0
            while start < d.count {
                let idx = Array(start..<min(start + 256, d.count))[...]
                let (maps, steps, labels) = batchTensor(d, idx)
                let logits = classifier(maps, steps: steps)
                loss += Double(crossEntropy(logits, targets: labels).item) * Double(idx.count)
                predictions += logits.argmaxLastAxis()
                start += 256
            }
        }
        func acc(_ filter: (Int) -> Bool) -> Double {
            let idx = (0..<d.count).filter(filter)
            return idx.isEmpty ? .nan : Double(idx.filter { predictions[$0] == d.labels[$0] }.count) / Double(idx.count)
        }
        var byStep: [Int: Double] = [:]
        for s in Set(d.steps) { byStep[s] = acc { d.steps[$0] == s } }
        let neg = (0..<d.count).filter { d.negative[$0] }
        let leak = neg.isEmpty ? .nan : Double(neg.filter { predictions[$0] == d.promptLabels[$0] }.count) / Double(neg.count)
        return ClassifierReport(epoch: epoch, trainLoss: trainLoss, validationLoss: Float(loss / Double(max(d.count, 1))),
                                accuracy: acc { _ in true }, accuracyByStep: byStep, accuracyPositive: acc { !d.negative[$0] },
                                accuracyNegative: acc { d.negative[$0] }, leakage: leak)
    }

    /// Trains; `onEpoch` sees each epoch's report (return false to stop). Returns the best report.
    public func train(_ trainSet: RelationDataset, validation: RelationDataset,
                      shouldStop: () -> Bool = { false }, onEpoch: (ClassifierReport) -> Void) -> ClassifierReport? {
        let params = classifier.parameters
        classifier.requiresGrad(true)
        let opt = AdamW(parameters: params, lr: config.learningRate, weightDecay: config.weightDecay)
        var plateau = ReduceLROnPlateau(lr: config.learningRate, factor: 0.5, patience: config.plateauPatience, minLR: 1e-6)
        var rng = RNG(seed: config.seed)
        var best: ClassifierReport?
        var bestWeights: [Tensor] = []
        var sinceBest = 0
        for epoch in 1...max(config.maxEpochs, 1) {
            if shouldStop() { break }
            classifier.train()
            var order = Array(0..<trainSet.count)
            rng.shuffle(&order)
            var total = 0.0
            var start = 0
            while start < order.count {
                let idx = order[start..<min(start + config.batchSize, order.count)]
                var (maps, steps, labels) = batchTensor(trainSet, idx)
                if config.augmentFlips {
                    if maps.storage === trainSet.maps[idx.first!].storage { maps = maps.copy() }  // never flip the dataset itself
                    for b in labels.indices {
                        for horizontal in [true, false] where rng.uniform() < 0.5 {
                            mirror(maps, item: b, horizontal: horizontal)
                            labels[b] = SpatialRelation.mirroredClass(labels[b], horizontal: horizontal)
                        }
                    }
                }
                let loss = crossEntropy(classifier(maps, steps: steps), targets: labels)
                total += Double(loss.item) * Double(idx.count)
                loss.backward()
                opt.step()
                opt.zeroGrad()
                start += config.batchSize
            }
            let report = evaluate(validation, epoch: epoch, trainLoss: Float(total / Double(max(order.count, 1))))
            opt.lr = plateau.step(report.validationLoss)
            onEpoch(report)
            if best == nil || report.validationLoss < best!.validationLoss {
                best = report
                bestWeights = params.map { $0.copy() }
                sinceBest = 0
            } else {
                sinceBest += 1
                if sinceBest >= config.earlyStoppingPatience { break }
            }
        }
        for (p, w) in zip(params, bestWeights) { p.assign(w) }
        classifier.eval()
        classifier.requiresGrad(false)
        return best
    }
}
