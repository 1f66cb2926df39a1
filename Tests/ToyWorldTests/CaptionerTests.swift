import Testing
import Relations
import Tensors
import ToyWorld

@Suite("Captions")
struct CaptionerTests {
    let sampler = SceneSampler(size: 32)

    @Test("relation phrases are canonical and round-trip")
    func phrases() {
        #expect(SpatialRelation.captionOrder.map(\.phrase) == ["to the left of", "to the right of", "above", "below"])
        for r in SpatialRelation.captionOrder {
            #expect(SpatialRelation(phrase: r.phrase) == r)
            #expect(r.inverse.inverse == r && r.inverse != r)
        }
        #expect(SpatialRelation(phrase: "left of") == nil)
    }

    @Test("relation captions state only relations that hold, with a clear margin")
    func relationsHold() {
        let captioner = Captioner(rates: CaptionRates(relation: 1, and: 0, single: 0, empty: 0))
        var relationCaptions = 0
        for seed in 0..<3000 {
            let scene = sampler.sample(seed: UInt64(seed))
            let caption = captioner.caption(for: scene, seed: UInt64(seed) &+ 99)
            guard let t = caption.relation else {
                #expect(caption.kind != .relation)
                // Fallback only when no pair is clear.
                #expect(captioner.clearRelations(in: scene).isEmpty)
                continue
            }
            relationCaptions += 1
            let s = scene.objects[t.subject], o = scene.objects[t.object]
            let gt = relations(subject: s.box, object: o.box)
            #expect(gt == [t.relation], "caption \(caption.text) but the boxes give \(gt)")
            #expect(clearRelation(subject: s.box, object: o.box) == t.relation)
            #expect(caption.text.hasPrefix("\(s.objectClass.article) \(s.objectClass.name) \(t.relation.phrase) \(o.objectClass.article) \(o.objectClass.name)"))
            #expect(caption.objects.count == scene.objects.count && Set(caption.objects).count == scene.objects.count)
        }
        #expect(relationCaptions > 1500)
    }

    @Test("every non-empty caption names every object of its scene")
    func namesEveryObject() {
        let captioner = Captioner()
        let sampler = SceneSampler(size: 32, objectCountWeights: [0.2, 0.45, 0.35])
        var named = 0
        for seed in 0..<4000 {
            let scene = sampler.sample(seed: UInt64(seed))
            let c = captioner.caption(for: scene, seed: UInt64(seed) &* 7 &+ 3)
            if c.kind == .empty { continue }
            named += 1
            #expect(Set(c.objects) == Set(scene.objects.indices), "\"\(c.text)\" leaves an object of \(scene.objects.count) unnamed")
            for o in scene.objects { #expect(c.text.contains(o.objectClass.name)) }
        }
        #expect(named > 3000)
    }

    /// Caption kinds drawn by `captioner` over 8,000 two- and three-object scenes, and the fraction of
    /// those scenes with a clear relation.
    func kindRates(_ captioner: Captioner) -> (rate: (CaptionKind) -> Double, clear: Double) {
        var kinds: [CaptionKind: Int] = [:]
        var clearScenes = 0
        let multi = SceneSampler(size: 32, objectCountWeights: [0, 1, 1])
        let n = 8000
        for seed in 0..<n {
            let scene = multi.sample(seed: UInt64(seed))
            if !captioner.clearRelations(in: scene).isEmpty { clearScenes += 1 }
            kinds[captioner.caption(for: scene, seed: UInt64(seed) &* 31 &+ 5).kind, default: 0] += 1
        }
        return ({ Double(kinds[$0, default: 0]) / Double(n) }, Double(clearScenes) / Double(n))
    }

    @Test("v1 captions (namesEveryObject off) come at the configured rates")
    func legacyRates() {
        let (rate, clear) = kindRates(Captioner(namesEveryObject: false))
        #expect(abs(rate(.empty) - 0.10) < 0.015)
        #expect(abs(rate(.single) - 0.15) < 0.02)
        // A relation draw falls back to "and" when no pair is clear.
        #expect(abs(rate(.relation) - 0.25 * clear) < 0.025)
        #expect(abs(rate(.and) - (0.50 + 0.25 * (1 - clear))) < 0.03)
    }

    @Test("caption kinds come at the configured rates; a single draw on a multi-object scene names them all")
    func rates() {
        let (rate, clear) = kindRates(Captioner())
        #expect(abs(rate(.empty) - 0.10) < 0.015)
        #expect(rate(.single) == 0)
        #expect(abs(rate(.relation) - 0.25 * clear) < 0.025)
        #expect(abs(rate(.and) - (0.65 + 0.25 * (1 - clear))) < 0.03)
    }

    @Test("articles: an before a vowel")
    func articles() {
        #expect(Captioner.phrase(Catalogue.named("orange ring")!) == "an orange ring")
        #expect(Captioner.phrase(Catalogue.named("red circle")!) == "a red circle")
        #expect(Captioner.relationCaption(subject: Catalogue.named("cyan bar")!, relation: .above,
                                          object: Catalogue.named("orange ring")!) == "a cyan bar above an orange ring")
    }

    @Test("one-object scenes and empty captions")
    func fallbacks() {
        let one = SceneSampler(size: 32, objectCountWeights: [1])
        for seed in 0..<50 {
            let scene = one.sample(seed: UInt64(seed))
            for rates in [CaptionRates(relation: 1, and: 0, single: 0, empty: 0), CaptionRates(relation: 0, and: 1, single: 0, empty: 0)] {
                let c = Captioner(rates: rates).caption(for: scene, seed: 1)
                #expect(c.kind == .single)
                #expect(c.text == Captioner.phrase(scene.objects[0].objectClass))
            }
            let e = Captioner(rates: CaptionRates(relation: 0, and: 0, single: 0, empty: 1)).caption(for: scene, seed: 1)
            #expect(e.kind == .empty && e.text.isEmpty)
        }
        let andOnly = Captioner(rates: CaptionRates(relation: 0, and: 1, single: 0, empty: 0))
        let scene = SceneSampler(size: 32, objectCountWeights: [0, 0, 1]).sample(seed: 5)
        let c = andOnly.caption(for: scene, seed: 3)
        #expect(c.kind == .and)
        #expect(c.text == c.objects.map { Captioner.phrase(scene.objects[$0].objectClass) }.joined(separator: " and "))
    }

    @Test("every caption word is in the tokenizer's vocabulary")
    func vocabularyCovers() {
        let tokenizer = WordTokenizer()
        let captioner = Captioner()
        for seed in 0..<500 {
            let caption = captioner.caption(for: sampler.sample(seed: UInt64(seed)), seed: UInt64(seed))
            #expect(!tokenizer.encode(caption.text).contains(WordTokenizer.unkID), "\(caption.text)")
            #expect(tokenizer.tokenize(caption.text).count <= 14, "\(caption.text) does not fit 16 tokens")
        }
    }

    @Test("captionPair: the positive states the true relation, the negative a wrong one")
    func pairs() {
        let captioner = Captioner()
        var rng = RNG(seed: 42)
        var negatives: [SpatialRelation: [SpatialRelation: Int]] = [:]
        var made = 0
        for seed in 0..<1500 {
            let scene = SceneSampler(size: 32, objectCountWeights: [0, 1]).sample(seed: UInt64(seed))
            guard let pair = captioner.captionPair(scene: scene, subject: 0, object: 1, using: &rng) else {
                #expect(captioner.clearRelation(in: scene, subject: 0, object: 1) == nil)
                continue
            }
            made += 1
            let s = Captioner.phrase(scene.objects[0].objectClass), o = Captioner.phrase(scene.objects[1].objectClass)
            #expect(relations(subject: scene.objects[0].box, object: scene.objects[1].box) == [pair.trueRelation])
            #expect(pair.positive == "\(s) \(pair.trueRelation.phrase) \(o)")
            let wrong = SpatialRelation.captionOrder.filter { pair.negative == "\(s) \($0.phrase) \(o)" }
            #expect(wrong.count == 1 && wrong[0] != pair.trueRelation, "negative \(pair.negative) for \(pair.positive)")
            if let w = wrong.first { negatives[pair.trueRelation, default: [:]][w, default: 0] += 1 }
        }
        #expect(made > 700)
        // Each true relation sees all three wrong words as negatives.
        for r in SpatialRelation.captionOrder { #expect(negatives[r]?.count == 3, "\(r): \(negatives[r] ?? [:])") }
        // Overlapping centres: no clear relation, no pair.
        let a = Catalogue.classes[0], b = Catalogue.classes[1]
        let stacked = Scene(size: 32, objects: [SceneObjectPlacement(objectClass: a, centre: SIMD2(16, 16), size: 8),
                                                SceneObjectPlacement(objectClass: b, centre: SIMD2(17, 16), size: 8)])
        #expect(captioner.captionPair(scene: stacked, subject: 0, object: 1, using: &rng) == nil)
    }
}
