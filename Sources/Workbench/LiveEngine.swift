// The real engine: a model (the embedded toy model, or a Stable Diffusion folder) driven by
// `SteeredGenerator` on a worker thread. Loads the weights in the background (a missing file becomes
// an `unavailable` status, not a crash), hands the UI's newer settings version to the generator's
// `live:` at step boundaries, pauses there on a condition, and cancels through the run's token.

import Foundation
import Relations
import Tensors
import Diffusion
import Steering
import ToyWorld
import ToyBench
import Imaging

final class LiveEngine: WorkbenchEngine, @unchecked Sendable {
    private(set) var name: String
    let vocabulary: ObjectVocabulary?
    var defaults: GenerationSettings
    private let classifier: RelationClassifier?
    /// Loads the model on the worker thread: the model and the status line that says what loaded.
    typealias Loader = @Sendable () throws -> (model: TextToImageModel, description: String)
    private let load: Loader
    private let loadingMessage: String
    private var worker: WorkerThread?
    private let lock = NSLock()
    private let current = CurrentRun()
    private var generator: SteeredGenerator?
    private var loadError: String?

    /// The model of `source`, loaded on the worker thread with `ModelProfile.load` (the screen is up
    /// meanwhile, with the profile's defaults). Without a relation classifier the hand-made centroid
    /// loss steers (and reads out probabilities).
    convenience init(_ source: ModelProfile.Source, classifier: RelationClassifier? = nil) {
        let loss = classifier == nil ? "centroid loss (no relation classifier)" : "learned classifier"
        let name: String, loading: String
        switch source {
        case .embedded:
            (name, loading) = ("toy model", "loading the toy model")
        case .stableDiffusion(let path, _, _):
            name = URL(fileURLWithPath: path).lastPathComponent
            loading = "loading \(name) (Stable Diffusion; this takes a while on a CPU)"
        }
        self.init(name: name, defaults: ModelProfile.defaults(of: source), vocabulary: ModelProfile.vocabulary(of: source),
                  classifier: classifier, loading: loading) {
            let profile = try ModelProfile.load(source)
            let model = profile.model
            let size = model.latentShape.map(String.init).joined(separator: "×")
            let what = profile.toy.map { "\($0.config.image_size)×\($0.config.image_size) px" } ?? "latents \(size)"
            return (model, "\(name) loaded (\(what), weights \(model.weightsHash.prefix(8)), \(loss))")
        }
    }

    /// Any model: `load` runs on the worker thread (a thrown error becomes an `unavailable` status).
    /// Without a classifier the hand-made centroid loss steers.
    init(name: String, defaults: GenerationSettings, vocabulary: ObjectVocabulary?, classifier: RelationClassifier?,
                loading: String, load: @escaping Loader) {
        self.name = name
        self.vocabulary = vocabulary
        self.classifier = classifier
        self.load = load
        self.loadingMessage = loading
        var d = defaults
        if classifier == nil { d.steering.loss = .handcrafted }
        self.defaults = d
    }

    func start(sink: @escaping @Sendable (EngineEvent) -> Void) {
        worker = WorkerThread(name: "l2s-sampler") { [self] in
            sink(.status(.starting(loadingMessage)))
            do {
                let (model, description) = try load()
                lock.lock()
                generator = SteeredGenerator(model: model, classifier: classifier, vocabulary: vocabulary)
                name = "\(name) \(model.weightsHash.prefix(8))"
                lock.unlock()
                sink(.status(.ready(description)))
            } catch {
                lock.lock()
                loadError = "\(error)"
                lock.unlock()
                sink(.status(.unavailable("\(error). Try `l2s --demo` for the scripted engine.")))
            }
        }
        worker?.start()
        self.sink = sink
    }

    private var sink: (@Sendable (EngineEvent) -> Void)?

    func submit(_ request: RunRequest, control: RunControl) {
        current.replace(with: control)
        guard let sink else { return }
        worker?.submit { [self] in
            lock.lock()
            let gen = generator
            let err = loadError
            lock.unlock()
            guard let gen else {
                sink(.failed(run: request.id, message: "the model is not loaded: \(err ?? "still loading")"))
                return
            }
            LiveEngine.run(request, control: control, generator: gen, sink: sink)
        }
    }

    static func run(_ request: RunRequest, control: RunControl, generator: SteeredGenerator,
                    sink: @escaping @Sendable (EngineEvent) -> Void) {
        let id = request.id
        guard !control.isCancelled else { sink(.cancelled(run: id, step: 0)); return }
        var applied = request.version
        // Ground truth per step: only the embedded toy model draws the world its detector knows.
        let hasDetector = generator.model is ToyModel
        var asked: DetectorReading.Request?
        var stepStart = Date()
        var lastStep = 0
        do {
            let result = try generator.run(request.settings, graph: request.graph, cancel: control.token, live: { step in
                lastStep = step
                if step < 3 { WorkerThread.lowerPoolPriority() }  // pool threads appear during the first steps
                control.waitAtBoundary(run: id, step: step, sink: sink)
                stepStart = Date()
                return control.newerSettings(than: &applied, run: id, step: step, sink: sink)
            }, onEvent: { event in
                switch event {
                case .parsed(let graph, let targets):
                    if hasDetector { asked = DetectorReading.Request(graph: graph) }
                    sink(.parsed(run: id, graph: graph, steerable: targets.map(\.edge)))
                case .applied:
                    break  // the UI learns of applied versions from `newerSettings`
                case .iteration(let it):
                    sink(.iteration(run: id, IterationRecord(it)))
                case .step(let e):
                    let image = RGBImage(firstImageOf: generator.model.preview(e.predictedClean))
                    let thumb = ImageFitter.thumbnail(image)
                    let rec = StepRecord(step: e.step, totalSteps: e.totalSteps, timestep: e.timestep,
                                         seconds: Date().timeIntervalSince(stepStart), preview: thumb,
                                         detector: asked.map { DetectorReading.read(image: e.predictedClean, asked: $0) })
                    sink(.step(run: id, control.fittingPreview(rec)))
                case .log(let line):
                    sink(.log(line))
                }
            })
            sink(.finished(run: id, image: RGBImage(firstImageOf: result.image), seconds: result.seconds))
        } catch SamplerError.cancelled(let step) {
            sink(.cancelled(run: id, step: step))
        } catch {
            if control.isCancelled { sink(.cancelled(run: id, step: lastStep)) } else { sink(.failed(run: id, message: "\(error)")) }
        }
    }

    func shutdown(timeout: Double) -> Bool {
        current.cancel()
        return worker?.shutdown(timeout: timeout) ?? true
    }
}
