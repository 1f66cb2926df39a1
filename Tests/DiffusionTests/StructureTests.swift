import Foundation
import Testing
@testable import Diffusion
@testable import Tensors

/// Key → shape listings from diffusers/transformers for SD 1.5- and SD 2-shaped models at reduced
/// widths but full depth (Fixtures/sd-structure.json): our module trees must produce exactly those keys.
@Suite struct StructureTests {
    struct Listing: Decodable {
        let unet: [Entry], vae: [Entry], text_encoder: [Entry]
        let unet_config: UNet2DConditionConfig, vae_config: AutoencoderKLConfig, text_config: CLIPTextConfig
    }
    struct Entry: Decodable {
        let key: String, shape: [Int]
        init(from decoder: Decoder) throws {
            var c = try decoder.unkeyedContainer()
            key = try c.decode(String.self)
            shape = try c.decode([Int].self)
        }
    }

    static let listings: [String: Listing] = {
        let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("sd-structure.json")
        let all = try! JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        var out: [String: Listing] = [:]
        for name in ["sd15", "sd2"] {
            let data = try! JSONSerialization.data(withJSONObject: all[name]!)
            out[name] = try! JSONDecoder().decode(Listing.self, from: data)
        }
        return out
    }()

    func compare(_ module: Module, _ expected: [Entry], prefix: String = "", _ what: String) {
        #expect(expected.count > 20, "\(what): empty listing")
        let ours = Dictionary(uniqueKeysWithValues: module.namedParameters().map { ($0.name, $0.tensor.shape) })
        let theirs = Dictionary(uniqueKeysWithValues: expected.map { (prefix + $0.key, $0.shape) })
        let missing = theirs.keys.filter { ours[$0] == nil }.sorted(), extra = ours.keys.filter { theirs[$0] == nil }.sorted()
        let misshaped = theirs.keys.filter { ours[$0] != nil && ours[$0] != theirs[$0] }.sorted()
        #expect(missing.isEmpty && extra.isEmpty && misshaped.isEmpty,
                "\(what): missing \(missing.prefix(5)), extra \(extra.prefix(5)), mis-shaped \(misshaped.prefix(5))")
    }

    @Test(arguments: ["sd15", "sd2"])
    func moduleTreesMatchDiffusersKeys(name: String) throws {
        let l = try #require(Self.listings[name])
        compare(try UNet2DConditionModel(config: l.unet_config), l.unet, "\(name) UNet")
        compare(try AutoencoderKL(config: l.vae_config), l.vae, "\(name) VAE")
        // transformers 5 lists CLIPTextModel keys without the `text_model.` prefix
        compare(try CLIPTextModel(config: l.text_config), l.text_encoder, prefix: "text_model.", "\(name) text encoder")
    }
}
