import Foundation
import Relations
import Testing
@testable import Steering
@testable import Diffusion
@testable import Tensors

/// A tiny random text-to-image model for tests: 8×8 pixels, UNet 8/16 with cross-attention at 4×4 and
/// 8×8, a 1-layer text encoder over a 12-word vocabulary.
final class TinyModel: TextToImageModel {
    static let words = ["<pad>", "<bos>", "<eos>", "a", "red", "circle", "blue", "square", "to", "the", "left", "of", "above", "below", "right"]
    let unet: UNet2DConditionModel
    let text: CLIPTextModel
    let schedulerConfig = SchedulerConfig.pixelSpace
    var latentShape: [Int] { [3, 8, 8] }
    var sequenceLength: Int { 12 }
    var tokenOffset: Int { 1 }
    var weightsHash: String { "tiny" }

    init(seed: UInt64 = 1) throws {
        var u = UNet2DConditionConfig()
        u.in_channels = 3; u.out_channels = 3; u.block_out_channels = [8, 16]; u.layers_per_block = 1
        u.down_block_types = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"]
        u.up_block_types = ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
        u.attention_head_dim = .one(2); u.cross_attention_dim = 16; u.norm_num_groups = 4
        unet = try UNet2DConditionModel(config: u, seed: seed)
        var t = CLIPTextConfig()
        t.vocab_size = TinyModel.words.count; t.hidden_size = 16; t.intermediate_size = 32; t.num_attention_heads = 2
        t.num_hidden_layers = 1; t.max_position_embeddings = 12
        text = try CLIPTextModel(config: t, seed: seed)
        unet.requiresGrad(false)
        text.requiresGrad(false)
    }

    func tokens(_ prompt: String) -> [PromptToken] {
        var out: [PromptToken] = []
        var offset = 0
        for word in prompt.split(separator: " ", omittingEmptySubsequences: false) {
            if !word.isEmpty {
                let id = TinyModel.words.firstIndex(of: word.lowercased()) ?? 0
                out.append(PromptToken(id: id, text: String(word), range: offset..<offset + word.utf8.count))
            }
            offset += word.utf8.count + 1
        }
        return Array(out.prefix(sequenceLength - 2))
    }
    func tokenIDs(_ prompt: String) -> [Int] {
        let ids = [1] + tokens(prompt).map(\.id) + [2]
        return ids + [Int](repeating: 0, count: sequenceLength - ids.count)
    }
    func encode(_ prompts: [String]) -> Tensor { text(prompts.map(tokenIDs)) }
    func decode(_ latents: Tensor) -> Tensor { latents }
}

@Suite("Attention maps, inversion, classifier, steering") struct SteeringCoreTests {
    @Test func mapsAreResizedNormalisedAndOrderedByResolution() {
        // Two layers: an 8×8 one captured first, then a 4×4 one; tokens T = 3.
        var rng = RNG(seed: 1)
        let big = Tensor.rand([1, 2, 64, 3], rng: &rng).softmax()
        let small = Tensor.rand([1, 1, 16, 3], rng: &rng).softmax()
        let layers = [CapturedAttention(layer: "a", place: .down, height: 8, width: 8, heads: 2, probabilities: big),
                      CapturedAttention(layer: "b", place: .mid, height: 4, width: 4, heads: 1, probabilities: small)]
        #expect(AttentionMaps.channelOrder(layers) == [1, 0])
        let maps = AttentionMaps.maps(layers, tokenSpan: 1..<3, size: 16)
        #expect(maps.shape == [3, 16, 16])
        for c in 0..<3 {
            let s = maps.sliced(axis: 0, c..<c + 1).sum().item
            #expect(abs(s - 1) < 1e-4)
        }
        // Channel 0 is the 4×4 layer: mean over tokens 1 and 2, bilinear-upsampled, renormalised.
        let expected = small.sliced(axis: 3, 1..<3).mean(axes: [3]).reshaped([1, 4, 4]).resizeBilinear(height: 16, width: 16)
        let e = expected / expected.sum()
        let got = maps.sliced(axis: 0, 0..<1)
        #expect(zip(got.array, e.array).map { abs($0 - $1) }.max()! < 1e-6)

        // The per-layer/head stack the workbench shows: layers in channel order, means over the choice.
        let stack = MapStack(maps, captured: layers)
        #expect(stack.layers.map(\.name) == ["b", "a"] && stack.layers.map(\.heads) == [1, 2] && stack.side == 16)
        func close(_ a: [Float], _ b: [Float]) -> Bool { zip(a, b).allSatisfy { abs($0 - $1) < 1e-6 } }
        #expect(close(stack.map(), maps.mean(axes: [0]).array))
        #expect(close(stack.map(layer: 0), got.array))
        #expect(close(stack.map(layer: 1), maps.sliced(axis: 0, 1..<3).mean(axes: [0]).array))
        #expect(close(stack.map(layer: 1, head: 1), maps.sliced(axis: 0, 2..<3).array))
        #expect(close(stack.map(layer: 7, head: 0), stack.map()))  // out of range: all channels
    }

    /// The presence signal: between the map's mean and its maximum, higher for a concentrated map
    /// than for a diffuse one, and its tape gradient matches central differences.
    @Test func attentionPeakIsASoftMaximumWithTheRightGradient() {
        var rng = RNG(seed: 11)
        let big = Tensor.rand([1, 2, 16, 4], rng: &rng).softmax()
        let small = Tensor.rand([1, 1, 4, 4], rng: &rng).softmax()
        func layers(_ a: Tensor, _ b: Tensor) -> [CapturedAttention] {
            [CapturedAttention(layer: "a", place: .down, height: 4, width: 4, heads: 2, probabilities: a),
             CapturedAttention(layer: "b", place: .mid, height: 2, width: 2, heads: 1, probabilities: b)]
        }
        let peak = AttentionMaps.peak(layers(big, small), tokenSpan: 1..<3).item
        func meanMap(_ t: Tensor, _ hw: Int) -> [Float] { t.sliced(axis: 3, 1..<3).mean(axes: [3]).mean(axes: [1]).reshaped([hw]).array }
        let m1 = meanMap(big, 16), m2 = meanMap(small, 4)
        let mean1: Float = m1.reduce(0, +) / 16, mean2: Float = m2.reduce(0, +) / 4
        let max1: Float = m1.max()!, max2: Float = m2.max()!
        let lo: Float = (mean1 + mean2) / 2, hi: Float = (max1 + max2) / 2
        #expect(peak > lo && peak < hi, "peak \(peak) outside (\(lo), \(hi))")
        // One hot spot draws a higher peak than the same mass spread out.
        let spread = Tensor(Array(repeating: Float(0.25), count: 16)).reshaped([1, 1, 16, 1])
        var spot = [Float](repeating: 0.05, count: 16); spot[5] = 0.95
        let hot = Tensor(spot).reshaped([1, 1, 16, 1])
        func single(_ t: Tensor) -> Float {
            AttentionMaps.peak([CapturedAttention(layer: "a", place: .up, height: 4, width: 4, heads: 1, probabilities: t)], tokenSpan: 0..<1).item
        }
        #expect(single(hot) > 0.8 && abs(single(spread) - 0.25) < 1e-5)
        // Gradient against central differences (loss accumulated in Double).
        let x = Tensor.rand([1, 2, 16, 4], rng: &rng), y = Tensor.rand([1, 1, 4, 4], rng: &rng)
        let (_, grads) = valueAndGradients(at: [x, y]) { AttentionMaps.peak(layers($0[0], $0[1]), tokenSpan: 1..<3) }
        for (t, g) in zip([x, y], grads) {
            for i in stride(from: 0, to: t.count, by: 3) {
                let old = t.pointer[i], eps: Float = 1e-2
                t.pointer[i] = old + eps
                let up = Double(noGrad { AttentionMaps.peak(layers(x, y), tokenSpan: 1..<3) }.item)
                t.pointer[i] = old - eps
                let down = Double(noGrad { AttentionMaps.peak(layers(x, y), tokenSpan: 1..<3) }.item)
                t.pointer[i] = old
                let numeric = Float((up - down) / Double(2 * eps))
                #expect(abs(numeric - g.pointer[i]) <= 2e-3 + 2e-2 * abs(numeric), "element \(i): tape \(g.pointer[i]) vs numeric \(numeric)")
            }
        }
    }

    /// A schedule written before the presence fields existed (an older trace) still reads, with their defaults.
    @Test func anOlderScheduleReadsWithTheNewFieldsDefaulted() throws {
        var s = SteeringSettings()
        s.endStep = 17; s.maxIterations = 4
        var dict = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(s)) as? [String: Any])
        #expect(dict["presenceWeight"] != nil)
        dict["presenceWeight"] = nil; dict["presenceFloor"] = nil
        let read = try JSONDecoder().decode(SteeringSettings.self, from: JSONSerialization.data(withJSONObject: dict))
        #expect(read == s)
        var p = s; p.presenceWeight = 2; p.presenceFloor = 0.4
        #expect(try JSONDecoder().decode(SteeringSettings.self, from: JSONEncoder().encode(p)) == p)
        p.presenceFloor = 1.5
        #expect(p.validationError() == "presence floor must be in 0…1")
    }

    @Test func inversionRoundTripReconstructs() throws {
        let model = try TinyModel()
        var rng = RNG(seed: 5)
        let x0 = Tensor.rand([1, 3, 8, 8], rng: &rng, low: -0.8, high: 0.8)
        let context = model.encode(["a red circle"])
        // From step 25 of 50 (t = 480), as the dataset builder inverts only to its deepest recorded step.
        let (recon, quality) = Inversion(model: model).roundTrip(x0, context: context, steps: 50, from: 25)
        #expect(recon.shape == x0.shape)
        let (_, refined) = Inversion(model: model, fixedPointIterations: 3).roundTrip(x0, context: context, steps: 50, from: 25)
        print("inversion round trip PSNR: plain \(quality) dB, fixed-point \(refined) dB")
        // Measured: plain ≈ 20 dB, fixed-point ≈ 44 dB on this random model.
        #expect(quality > 15, "PSNR \(quality) dB")
        #expect(refined > 35 && refined > quality + 10, "fixed-point PSNR \(refined) dB vs plain \(quality) dB")
    }

    /// Maps with a blob per object: the classifier must learn which side the subject is on.
    static func blobMaps(_ relation: SpatialRelation, rng: inout RNG, channels: Int = 3) -> Tensor {
        func blob(_ cx: Float, _ cy: Float) -> Tensor {
            let t = Tensor(uninitialized: [channels, 16, 16])
            for c in 0..<channels { for y in 0..<16 { for x in 0..<16 {
                let d = (Float(x) - cx) * (Float(x) - cx) + (Float(y) - cy) * (Float(y) - cy)
                t[c, y, x] = Foundation.exp(-d / 8) + 0.05 * rng.uniform()
            } } }
            return t / t.sum(axes: [1, 2], keepDims: true)
        }
        let a = Float(3 + rng.int(below: 3)), b = Float(10 + rng.int(below: 3)), o = Float(4 + rng.int(below: 8))
        switch relation {
        case .leftOf: return Tensor.stack([blob(a, o), blob(b, o)])
        case .rightOf: return Tensor.stack([blob(b, o), blob(a, o)])
        case .above: return Tensor.stack([blob(o, a), blob(o, b)])
        case .below: return Tensor.stack([blob(o, b), blob(o, a)])
        }
    }

    @Test func classifierLearnsATinySet() {
        var rng = RNG(seed: 2)
        var data = RelationDataset()
        for i in 0..<160 {
            let r = SpatialRelation.allCases[i % 4]
            data.append(RelationSample(maps: Self.blobMaps(r, rng: &rng), label: r.classIndex, step: [5, 25][i % 2],
                                       negative: i % 3 == 0, promptLabel: r.inverse.classIndex, exampleID: i))
        }
        let (train, validation) = data.split(validationEvery: 5)
        var c = RelationClassifierConfig()
        c.d_model = 32; c.extractor_nhead = 2; c.extractor_num_layers = 1; c.extractor_dim_feedforward = 32
        c.extractor_layer_attn_nheads = 2; c.classifier_nhead = 2; c.classifier_num_layers = 1; c.classifier_dim_feedforward = 32
        c.dropout = 0; c.max_channels = 8; c.training_steps = [5, 25]
        let classifier = RelationClassifier(config: c, seed: 3)
        var tc = ClassifierTrainingConfig()
        tc.learningRate = 2e-3; tc.maxEpochs = 40; tc.batchSize = 16; tc.earlyStoppingPatience = 40
        var reports: [ClassifierReport] = []
        let best = ClassifierTrainer(classifier: classifier, config: tc).train(train, validation: validation) { reports.append($0) }
        #expect(best != nil)
        #expect(reports.first!.trainLoss > reports.last!.trainLoss)
        #expect(best!.accuracy >= 0.9, "held-out accuracy \(best!.accuracy)")
        // Saved and loaded, it predicts the same.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cls-\(UInt32.random(in: 0...UInt32.max)).safetensors").path
        try? classifier.saveClassifier(to: path, dtype: .f32)
        let loaded = try? RelationClassifier.load(path: path)
        #expect(loaded != nil)
        if let loaded {
            let m = Tensor.stack([validation.maps[0]]), s = [5]
            #expect(zip(noGrad { classifier(m, steps: s) }.array, noGrad { loaded(m, steps: s) }.array).allSatisfy { abs($0 - $1) < 1e-5 })
        }
        try? FileManager.default.removeItem(atPath: path)
    }

    @Test func datasetShardRoundTripsWithHalfPrecisionMaps() throws {
        var rng = RNG(seed: 9)
        var data = RelationDataset()
        for i in 0..<3 {
            data.append(RelationSample(maps: Self.blobMaps(.above, rng: &rng, channels: 2), label: 0, step: 10 * i,
                                       negative: i == 1, promptLabel: 1, exampleID: 4000 + i))
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("shard-\(getpid()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try data.write(to: path)
        let file = try SafetensorsFile(path: path)
        #expect(file.info("maps")?.dtype == "F16")
        #expect(file.info("example_ids")?.dtype == "F32")
        let back = try RelationDataset.read(path)
        #expect(back.exampleIDs == data.exampleIDs && back.steps == data.steps && back.negative == data.negative)
        for (a, b) in zip(back.maps, data.maps) {
            #expect(zip(a.array, b.array).allSatisfy { abs($0 - $1) <= 1e-3 * max(abs($1), 1e-3) + 1e-6 })
        }
    }

    @Test func classifierParameterNamesMatchTheAuthors() {
        let names = Set(RelationClassifier(config: RelationClassifierConfig()).namedParameters().map(\.name))
        for key in ["object_extractor.input_projection.weight", "object_extractor.timestep_embedding.weight",
                    "object_extractor.transformer.layers.0.self_attn.in_proj_weight",
                    "object_extractor.transformer.layers.1.linear2.bias", "object_extractor.transformer.layers.0.norm1.weight",
                    "object_extractor.query_vector", "object_extractor.layer_attention.in_proj_bias",
                    "object_extractor.layer_attention.out_proj.weight", "object_extractor.output_projection.weight",
                    "relation_classifier.timestep_embedding.weight", "relation_classifier.projection.weight",
                    "relation_classifier.transformer.layers.1.self_attn.out_proj.bias",
                    "relation_classifier.fc.0.weight", "relation_classifier.fc.1.weight", "relation_classifier.fc.4.weight",
                    "relation_classifier.fc.5.bias", "relation_classifier.fc.8.weight"] {
            #expect(names.contains(key), "missing \(key)")
        }
        // The SD configuration has the authors' parameter count (l2s-method.md §3: 1,964,581).
        #expect(RelationClassifier(config: .stableDiffusion).parameterCount == 1_964_581)
    }

    /// Flip augmentation mirrors every plane of one batch item and swaps the matching labels.
    @Test func mirroringMapsSwapsTheRelation() {
        let maps = Tensor(zeros: [2, 2, 1, 4, 4])
        maps.pointer[0 * 16 + 1 * 4 + 0] = 1  // item 0, subject plane: row 1, column 0
        maps.pointer[1 * 16 + 2 * 4 + 3] = 1  // item 0, object plane: row 2, column 3
        mirror(maps, item: 0, horizontal: true)
        #expect(maps.pointer[1 * 4 + 3] == 1 && maps.pointer[16 + 2 * 4 + 0] == 1 && maps.sum().item == 2)
        mirror(maps, item: 0, horizontal: false)
        #expect(maps.pointer[2 * 4 + 3] == 1 && maps.pointer[16 + 1 * 4 + 0] == 1)
        #expect(maps.sliced(axis: 0, 1..<2).sum().item == 0, "the other item is untouched")
        let swapped = (0..<5).map { SpatialRelation.mirroredClass($0, horizontal: true) }
        #expect(swapped == [0, 1, 2, 4, 3])
        #expect((0..<5).map { SpatialRelation.mirroredClass($0, horizontal: false) } == [1, 0, 2, 3, 4])
        #expect(SpatialRelation.leftOf.classIndex == 3 && SpatialRelation.above.classIndex == 0)
    }

    /// A classifier built in PyTorch from l2s-method.md §3 (random weights, the authors' checkpoint layout,
    /// a different class order), converted by Scripts/convert_authors_classifier.py: same logits here.
    @Test func convertedAuthorsCheckpointGivesTheirLogits() throws {
        let folder = try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil)).path
        let classifier = try RelationClassifier.load(path: folder + "/authors-classifier-converted.safetensors")
        let ref = try SafetensorsFile(path: folder + "/authors-classifier-reference.safetensors")
        let file = try SafetensorsFile(path: folder + "/authors-classifier-converted.safetensors")
        #expect(classifier.namedParameters().count == file.names.count, "every converted tensor is a parameter and vice versa")
        let steps = try ref.tensor("steps").array.map { Int($0) }
        let logits = GradMode.withoutGrad { classifier(try! ref.tensor("maps"), steps: steps) }
        let expected = try ref.tensor("logits")
        let err = zip(logits.array, expected.array).map { abs($0 - $1) }.max()!
        print("converted authors' classifier: max-abs logit error \(err)")
        #expect(logits.shape == [3, 5] && err < 1e-4)
    }

    /// Steering with the handcrafted loss moves the maps: the loss falls over refinement iterations.
    @Test func steeringLowersTheLoss() throws {
        let model = try TinyModel(seed: 4)
        let generator = SteeredGenerator(model: model, classifier: nil)
        var schedule = SteeringSettings()
        schedule.loss = .handcrafted; schedule.startStep = 0; schedule.endStep = 1; schedule.maxIterations = 12
        schedule.stepSizes = [0.3]; schedule.probabilityTarget = 1; schedule.handcraftedMargin = 0.5
        var losses: [Float] = []
        var targetProbabilities: [Float] = []
        let settings = GenerationSettings(sampler: SamplerSettings(prompt: "a red circle to the left of a blue square", seed: 3, steps: 4,
                                                                   guidanceScale: 1), steering: schedule)
        _ = try generator.run(settings, onEvent: { event in
            if case .iteration(let it) = event { losses.append(it.loss); targetProbabilities.append(it.targetProbability) }
        })
        #expect(losses.count == 12)
        #expect(losses.last! < losses.first!, "loss \(losses)")
        #expect(targetProbabilities.last! > targetProbabilities.first!, "p(target) \(targetProbabilities)")
    }

    /// One settings value end to end: a live edit returned at a step boundary reaches the steerer
    /// from that step on (here: two iterations per step instead of one, and relation 2 switched
    /// off), the sampler keeps the run's prompt, seed, steps and mode, and the result records the
    /// settings in force from each step.
    @Test func aLiveEditReachesTheSteererAtTheNextBoundary() throws {
        let model = try TinyModel(seed: 4)
        let generator = SteeredGenerator(model: model, classifier: nil)
        var schedule = SteeringSettings()
        schedule.loss = .handcrafted; schedule.startStep = 0; schedule.endStep = 4; schedule.maxIterations = 1
        schedule.stepSizes = [0.3]; schedule.probabilityTarget = 1
        let prompt = "red circle left of blue square above red square"  // two relations inside TinyModel's 12 tokens
        let settings = GenerationSettings(sampler: SamplerSettings(prompt: prompt, seed: 3, steps: 4, guidanceScale: 1),
                                          steering: schedule)
        var edit = settings
        edit.prompt = "ignored: the prompt is fixed once a run starts"
        edit.seed = 99; edit.steps = 50; edit.steering.mode = .off
        edit.steering.maxIterations = 2
        edit.guidance = 2
        edit.order = [0, 1]; edit.disabled = [1]
        var asked: [Int] = []
        var judged: [(step: Int, edge: Int)] = []
        var appliedEvents: [AppliedSettings] = []
        let result = try generator.run(settings, live: { step in asked.append(step); return step == 2 ? edit : nil }, onEvent: { event in
            if case .iteration(let it) = event { judged.append((it.step, it.edge)) }
            if case .applied(let a) = event { appliedEvents.append(a) }
        })
        #expect(asked == [0, 1, 2, 3], "asked once per step")
        #expect(judged.map(\.step) == [0, 1, 2, 2, 3, 3])
        #expect(judged.map(\.edge) == [0, 1, 0, 0, 0, 0], "round robin over both, then relation 1 only")
        #expect(result.applied.map(\.step) == [0, 2] && appliedEvents == result.applied)
        let later = try #require(result.applied.last?.settings)
        #expect(later.prompt == prompt && later.seed == 3 && later.steps == 4 && later.steering.mode == .steer)
        #expect(later.guidance == 2 && later.steering.maxIterations == 2 && later.disabled == [1])
    }

    /// A graph the caller already parsed is used (the prompt is parsed once), but only for its own
    /// prompt: here a graph whose order was emptied steers nothing, and one of another prompt is ignored.
    @Test func aGivenGraphIsUsedOnlyForItsPrompt() throws {
        let model = try TinyModel(seed: 4)
        let generator = SteeredGenerator(model: model, classifier: nil)
        var schedule = SteeringSettings()
        schedule.loss = .handcrafted; schedule.startStep = 0; schedule.endStep = 2; schedule.maxIterations = 1
        let prompt = "red circle left of blue square"
        let settings = GenerationSettings(sampler: SamplerSettings(prompt: prompt, seed: 3, steps: 2, guidanceScale: 1), steering: schedule)
        func iterations(_ graph: RelationGraph?) throws -> Int {
            var n = 0
            _ = try generator.run(settings, graph: graph, onEvent: { if case .iteration = $0 { n += 1 } })
            return n
        }
        var mine = try generator.parser.parse(prompt)
        mine.order = []
        #expect(try iterations(nil) == 2)
        #expect(try iterations(mine) == 0)
        var other = try generator.parser.parse("blue square left of red circle")
        other.order = []
        #expect(try iterations(other) == 2)
    }

    /// Schedules written before `mode` existed (`enabled`) read back: false is `.off`, true `.steer`.
    @Test func olderSchedulesReadTheirOnOffSwitchAsTheMode() throws {
        func mode(_ json: String) throws -> SteeringMode { try JSONDecoder().decode(SteeringSettings.self, from: Data(json.utf8)).mode }
        #expect(try mode(#"{"enabled": false, "startStep": 0}"#) == .off)
        #expect(try mode(#"{"enabled": true}"#) == .steer)
        #expect(try mode(#"{"mode": "observe"}"#) == .observe)
        #expect(try mode("{}") == .steer)
    }

    /// A tiny model, the context of "a red circle to the left of a blue square", and a handcrafted-loss
    /// schedule over steps [0, endStep) of one iteration whose target is never reached.
    func handcraftedFixture(endStep: Int) throws -> (TinyModel, Tensor, SteeringSettings) {
        let model = try TinyModel(seed: 4)
        let context = model.encode(["a red circle to the left of a blue square"])
        var schedule = SteeringSettings()
        schedule.loss = .handcrafted; schedule.startStep = 0; schedule.endStep = endStep; schedule.maxIterations = 1
        schedule.stepSizes = [0.3]; schedule.probabilityTarget = 1.01; schedule.lossTarget = -1
        return (model, context, schedule)
    }

    /// The Steerer runs `RefinementLoop`'s policy: with two relations and one iteration per step, the
    /// relations alternate across steps (the turn is kept), and a step is skipped outside the range.
    @Test func steererTakesTurnsAcrossSteps() throws {
        let (model, context, schedule) = try handcraftedFixture(endStep: 3)
        let targets = [SteeringTarget(edge: 0, subject: "red circle", object: "blue square", relation: .leftOf, subjectTokens: 2..<4, objectTokens: 9..<11),
                       SteeringTarget(edge: 1, subject: "blue square", object: "red circle", relation: .above, subjectTokens: 9..<11, objectTokens: 2..<4)]
        let steerer = Steerer(unet: model.unet, classifier: nil, targets: targets, schedule: schedule)
        var judged: [Int] = []
        steerer.onIteration = { judged.append($0.edge) }
        var rng = RNG(seed: 9)
        var z = Tensor.randn([1] + model.latentShape, rng: &rng)
        for step in 0..<4 {
            let before = z.array
            z = steerer.refine(latents: z, step: step, timestep: 900 - 100 * step, totalSteps: 4, context: context)
            #expect((z.array != before) == (step < 3), "step \(step) moves the latent only inside the range")
        }
        #expect(judged == [0, 1, 0])
        #expect(steerer.turn == 3)
    }

    /// Observing (the unsteered half of an A/B pair) reads the same loss and probabilities as a
    /// steered run's first iteration at the same latent, but off the tape: no gradient is computed
    /// (its norm reads 0) and the latent is returned as it was.
    @Test func observingReadsTheClassifierWithoutAGradient() throws {
        let (model, context, fixture) = try handcraftedFixture(endStep: 1)
        var schedule = fixture
        let target = SteeringTarget(edge: 0, subject: "red circle", object: "blue square", relation: .leftOf,
                                    subjectTokens: 2..<4, objectTokens: 9..<11)
        var rng = RNG(seed: 9)
        let z = Tensor.randn([1] + model.latentShape, rng: &rng)
        var seen: [SteeringIteration] = []
        for mode in [SteeringMode.steer, .observe] {
            schedule.mode = mode
            let steerer = Steerer(unet: model.unet, classifier: nil, targets: [target], schedule: schedule)
            steerer.onIteration = { seen.append($0) }
            let out = steerer.refine(latents: z, step: 0, timestep: 900, totalSteps: 4, context: context)
            #expect((out.array == z.array) == (mode == .observe))
        }
        #expect(seen.count == 2)
        #expect(seen[0].gradientNorm > 0 && seen[1].gradientNorm == 0)
        #expect(abs(seen[0].loss - seen[1].loss) < 1e-6)
        // (The tape and the plain forward may take different kernels: equal to rounding.)
        #expect(zip(seen[0].probabilities, seen[1].probabilities).allSatisfy { abs($0 - $1) < 1e-5 } && seen[1].probabilities.count == 5)
    }

    /// The presence loss raises the objects' attention peaks; with a floor no peak reaches, every
    /// iteration runs (the step never counts as done while an object looks absent).
    @Test func presenceSteeringRaisesTheObjectsPeaks() throws {
        let model = try TinyModel(seed: 4)
        let context = model.encode(["a red circle to the left of a blue square"])
        var schedule = SteeringSettings()
        schedule.loss = .presence; schedule.startStep = 0; schedule.endStep = 1; schedule.maxIterations = 6
        schedule.stepSizes = [0.5]; schedule.presenceFloor = 1
        let target = SteeringTarget(edge: 0, subject: "red circle", object: "blue square", relation: .leftOf, subjectTokens: 2..<4, objectTokens: 9..<11)
        let steerer = Steerer(unet: model.unet, classifier: nil, targets: [target], schedule: schedule)
        var peaks: [[Float]] = [], notes: [String?] = []
        steerer.onIteration = { peaks.append($0.peaks); notes.append($0.note) }
        var rng = RNG(seed: 9)
        let z = Tensor.randn([1] + model.latentShape, rng: &rng)
        _ = steerer.refine(latents: z, step: 0, timestep: 900, totalSteps: 4, context: context)
        #expect(peaks.count == 6 && notes.allSatisfy { $0 == nil }, "\(notes)")
        #expect(peaks.last!.reduce(0, +) > peaks.first!.reduce(0, +), "peaks \(peaks)")
    }

    /// A finite but huge update (1e30, as `--step-size 1e30` gave) is skipped and logged, not applied
    /// (it pushed the latent to ~1e30 and the image to all black).
    @Test func anExplodingUpdateIsSkippedAndLogged() throws {
        let model = try TinyModel(seed: 4)
        var schedule = SteeringSettings()
        schedule.loss = .handcrafted; schedule.startStep = 0; schedule.endStep = 1; schedule.maxIterations = 3
        schedule.probabilityTarget = 1; schedule.handcraftedMargin = 0.5
        let target = SteeringTarget(edge: 0, subject: "red circle", object: "blue square", relation: .leftOf,
                                    subjectTokens: 2..<4, objectTokens: 9..<11)
        let context = model.encode(["a red circle to the left of a blue square"])
        var rng = RNG(seed: 5)
        let z = Tensor.randn([1, 3, 8, 8], rng: &rng)
        for (update, size) in [(SteeringUpdate.normalized, Float(1e30)), (.plain, 1e30)] {
            schedule.update = update; schedule.stepSizes = [size]
            let steerer = Steerer(unet: model.unet, classifier: nil, targets: [target], schedule: schedule)
            var logs: [String] = []
            steerer.onLog = { logs.append($0) }
            let out = steerer.refine(latents: z, step: 0, timestep: 900, totalSteps: 4, context: context)
            #expect(out.array == z.array, "\(update): the latent moved")
            #expect(logs.count == 3 && logs.allSatisfy { $0.contains("would explode the latent") }, "\(logs)")
        }
        schedule.update = .normalized; schedule.stepSizes = [0.3]
        let steerer = Steerer(unet: model.unet, classifier: nil, targets: [target], schedule: schedule)
        #expect(steerer.refine(latents: z, step: 0, timestep: 900, totalSteps: 4, context: context).array != z.array)
        #expect(schedule.validationError() == nil)
        // One named limit per rule (SteeringSettings.maxStepSize), shared by the CLI and the workbench.
        schedule.stepSizes = [11]
        #expect(schedule.validationError()?.contains("0…10 for the normalized update") == true)
        schedule.update = .plain
        #expect(schedule.validationError() == nil)
        schedule.stepSizes = [101]
        #expect(schedule.validationError()?.contains("0…100 for the plain update") == true)
    }
}
