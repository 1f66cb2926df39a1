import Foundation
import Tensors

/// Stable Diffusion 1.x/2.x from a diffusers folder: CLIP tokenizer + text encoder, UNet, VAE and DDIM
/// (ε- or v-prediction, from the scheduler config). Latents are the VAE's, scaled by `scaling_factor`.
public final class StableDiffusionModel: TextToImageModel {
    public let folder: ModelFolder
    public let unet: UNet2DConditionModel
    public let textEncoder: CLIPTextModel
    public let tokenizer: CLIPTokenizer
    public let vae: AutoencoderKL
    public let schedulerConfig: SchedulerConfig
    public let weightsHash: String
    /// Latent side length (image side / `vae.config.downscale`); the UNet config's `sample_size`
    /// (64 → 512 px for SD 1.x) unless set otherwise. Must be a multiple of 2^(UNet blocks − 1).
    public var latentSize: Int {
        didSet { precondition(latentSize > 0 && latentSize % (1 << (unet.config.block_out_channels.count - 1)) == 0,
                              "latent size \(latentSize) does not pass through the UNet's downsamplers") }
    }

    /// Loads every component of the folder at `path` (strict keys and shapes), after checking that
    /// the configs' memory estimate at `latentSize` (default: the UNet's sample_size) fits `memoryLimit`
    /// (default: `MemoryEstimate.available`), so an oversized model is refused before anything is allocated.
    public init(path: String, preferFP16: Bool = false, latentSize: Int? = nil, memoryLimit: Double? = nil) throws {
        folder = try ModelFolder(path: path, preferFP16: preferFP16)
        let side = latentSize ?? folder.unetConfig.sample_size
        guard folder.unetConfig.acceptsLatentSide(side) else {
            throw ModelFolderError.unsupported(file: folder.path + "/unet/config.json",
                                               detail: "latent size \(side) is not a multiple of \(1 << (folder.unetConfig.block_out_channels.count - 1)) (the UNet's down-sampling factor)")
        }
        do {
            try folder.memoryEstimate(latentSide: side).check(model: "this model at \(side * folder.vaeConfig.downscale) px",
                                                              limit: memoryLimit ?? MemoryEstimate.available)
        } catch let e as ConfigError {
            throw ModelFolderError.unsupported(file: folder.path, detail: e.description)
        }
        tokenizer = try folder.loadTokenizer()
        textEncoder = try folder.loadTextEncoder()
        unet = try folder.loadUNet()
        vae = try folder.loadVAE()
        schedulerConfig = folder.schedulerConfig
        self.latentSize = side
        for m in [unet, textEncoder, vae] as [Module] { m.requiresGrad(false) }
        weightsHash = quickHash([folder.unetWeights, folder.textEncoderWeights, folder.vaeWeights])
    }

    /// Image side in pixels for the current `latentSize`.
    public var imageSize: Int { latentSize * vae.config.downscale }
    public var latentShape: [Int] { [unet.config.in_channels, latentSize, latentSize] }
    public var sequenceLength: Int { tokenizer.maxLength }
    public var tokenOffset: Int { 1 }
    public func tokenIDs(_ prompt: String) -> [Int] { tokenizer.encode(prompt) }

    /// The prompt's tokens as the text encoder sees them (truncated to maxLength − 2).
    public func tokens(_ prompt: String) -> [PromptToken] { Array(tokenizer.tokenize(prompt).prefix(tokenizer.maxLength - 2)) }

    /// CLIP last_hidden_state [B, 77, D] for the prompts.
    public func encode(_ prompts: [String]) -> Tensor { textEncoder(prompts.map(tokenIDs)) }

    /// Pixels [B, 3, H, W] in [−1, 1] from scaled latents (the full VAE decoder: ≈ 3 UNet evaluations at 512 px).
    public func decode(_ latents: Tensor) -> Tensor {
        vae.decode(latents / vae.config.scaling_factor).clamped(-1, 1)
    }

    /// Latents [B, 4, h, w] (scaled) for images [B, 3, H, W] in [−1, 1]: the encoder's mean × scaling_factor.
    public func encodeImages(_ images: Tensor) -> Tensor { vae.encode(images) * vae.config.scaling_factor }

    /// A cheap RGB preview at latent resolution: a fixed linear map of the 4 latent channels
    /// (fitted for the SD 1.x/2.x VAE; not meaningful for other latent spaces), clamped to [−1, 1].
    public func preview(_ latents: Tensor) -> Tensor {
        let c = latents.shape[1]
        guard c == 4 else { return latents.sliced(axis: 1, 0..<min(3, c)).clamped(-1, 1) }
        let w = Tensor(StableDiffusionModel.latentRGB, shape: [3, 4, 1, 1])
        return conv2d(latents, weight: w, bias: nil).clamped(-1, 1)
    }

    /// Rows R, G, B over latent channels 0…3: an approximate least-squares fit from scaled SD 1.x
    /// latents to RGB in [−1, 1] (widely used community numbers).
    static let latentRGB: [Float] = [
        0.298, 0.187, -0.158, -0.184,
        0.207, 0.286, 0.189, -0.271,
        0.208, 0.173, 0.264, -0.473,
    ]
}

/// A cheap identity for large weight files: FNV-1a over each file's size and its first, middle and
/// last 64 KiB (a full hash of 4 GB would take longer than loading).
func quickHash(_ paths: [String]) -> String {
    var h = FNV1a64()
    func mix(_ bytes: Data) { h.mix(bytes) }
    for path in paths {
        guard let handle = FileHandle(forReadingAtPath: path) else { continue }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()) ?? 0
        mix(Data(String(size).utf8))
        let chunk: UInt64 = 65536
        for offset in [0, size / 2, size > chunk ? size - chunk : 0] {
            try? handle.seek(toOffset: offset)
            mix((try? handle.read(upToCount: Int(chunk))) ?? Data())
        }
    }
    return h.hex
}
