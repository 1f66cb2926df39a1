import Foundation
import Testing
import Diffusion
import Relations
import Steering
import Tensors
import ToyBench
import ToyWorld

/// The classifier-data source that records maps along the model's own sampling trajectories and
/// labels each with what the detector reads on the final image.
@Suite struct SampledDatasetTests {
    /// A sampled trajectory is the sampler's own run (same seed → same final image), the judge's
    /// reading is the label, a reading that differs from the prompt's word marks a wrong-word
    /// sample, and an image the judge cannot read is dropped.
    @Test func samplingSourceLabelsTrajectoriesByTheJudge() throws {
        let model = try ToyModel(config: .small, seed: 3)
        var config = DatasetConfig()
        config.source = .sampling
        config.recordSteps = [2, 5]
        config.steps = 6
        config.guidance = 1.5
        config.seed = 11
        let examples = ToyEval.relationExamples(count: 4, seed: 5, size: model.config.image_size, startID: 20)
        // Job order = example order: read "above", unreadable, "to the left of", unreadable.
        let verdicts: [SpatialRelation?] = [.above, nil, .leftOf, nil]
        var seen: [(Tensor, String)] = []
        let builder = DatasetBuilder(model: model, config: config) { image, prompt in
            seen.append((image.copy(), prompt))
            return verdicts[seen.count - 1]
        }
        var dropped: [String] = []
        let samples = builder.samples(for: examples) { dropped.append($0) }
        #expect(seen.map(\.1) == examples.map(\.positivePrompt))
        #expect(dropped.count == 2 && dropped[0].contains("example 21"), "\(dropped)")
        #expect(samples.count == 2 * config.recordSteps.count)
        for (k, example) in [(0, examples[0]), (2, examples[2])] {
            let mine = samples.filter { $0.exampleID == example.id }
            #expect(mine.map(\.step) == config.recordSteps)
            for s in mine {
                #expect(s.label == verdicts[k]!.classIndex)
                #expect(s.promptLabel == example.relation.classIndex)
                #expect(s.negative == (verdicts[k]! != example.relation))
                #expect(s.maps.rank == 4 && s.maps.shape[0] == 2 && s.maps.shape[2] == 16)
                #expect(s.maps.array.allSatisfy { $0.isFinite })
            }
            // The trajectory is the sampler's own: the same prompt, seed and guidance give the same image.
            let settings = SamplerSettings(prompt: example.positivePrompt, seed: config.seed &* 1_000_003 &+ UInt64(example.id),
                                           steps: config.steps, guidanceScale: config.guidance)
            let reference = noGrad { model.decode(try! Sampler(model: model).run(settings)) }
            let diff = zip(seen[k].0.array, reference.array).map { abs($0 - $1) }.max() ?? 1
            #expect(diff < 1e-3, "sampled image differs from Sampler.run by \(diff)")
        }
        // Guidance 1 runs the conditional branch alone (its maps are items 0…B−1 of the pass): still
        // the sampler's own trajectory, and maps recorded for every step asked.
        config.guidance = 1
        var plain: [Tensor] = []
        let unguided = DatasetBuilder(model: model, config: config) { image, _ in plain.append(image.copy()); return .below }
        let unguidedSamples = unguided.samples(for: [examples[0]])
        #expect(unguidedSamples.map(\.step) == config.recordSteps && unguidedSamples.allSatisfy { $0.maps.array.allSatisfy { $0.isFinite } })
        let settings = SamplerSettings(prompt: examples[0].positivePrompt, seed: config.seed &* 1_000_003 &+ UInt64(examples[0].id),
                                       steps: config.steps, guidanceScale: 1)
        let reference = noGrad { model.decode(try! Sampler(model: model).run(settings)) }
        #expect(zip(plain[0].array, reference.array).allSatisfy { abs($0 - $1) < 1e-3 })
    }

    /// The detector's label of a rendered scene is the scene's relation (or nil when it reads two,
    /// e.g. a diagonal offset); never a different one.
    @Test func relationLabelOfRenderedScenesIsTheirRelation() {
        let parser = PromptParser(vocabulary: ObjectVocabulary(Catalogue.classes.map(\.name)))
        let examples = ToyEval.relationExamples(count: 40, seed: 9, size: 32)
        var labelled = 0
        for e in examples {
            guard let read = DetectorReading.relationLabel(image: e.latent, prompt: e.positivePrompt, parser: parser) else { continue }
            labelled += 1
            #expect(read == e.relation, "\(e.positivePrompt): read \(read)")
        }
        #expect(labelled >= 30, "only \(labelled) of 40 rendered scenes labelled")
        // An image without the objects has no label.
        let blank = Tensor(zeros: [1, 3, 32, 32]) - 1
        #expect(DetectorReading.relationLabel(image: blank, prompt: examples[0].positivePrompt, parser: parser) == nil)
    }
}
