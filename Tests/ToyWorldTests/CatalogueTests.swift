import Testing
import ToyWorld

@Suite("Catalogue")
struct CatalogueTests {
    @Test("eight classes with the documented names, in index order")
    func names() {
        #expect(Catalogue.classes.map(\.name) == [
            "red circle", "blue square", "green triangle", "yellow star",
            "purple diamond", "orange ring", "white cross", "cyan bar",
        ])
        #expect(Catalogue.classes.map(\.index) == Array(0..<8))
        #expect(Set(Catalogue.colourWords).count == 8)
        #expect(Set(Catalogue.classes.map(\.shape)).count == 8)
    }

    @Test("class colours are far apart and far from the background")
    func coloursDistinct() {
        let background = SceneRenderer.baseBackground
        for a in Catalogue.classes {
            #expect(a.rgb.min() >= 0 && a.rgb.max() <= 1)
            let toBackground = ((a.rgb - background) * (a.rgb - background)).sum().squareRoot()
            #expect(toBackground > 0.6, "\(a.name) too close to the background")
            for b in Catalogue.classes where b.index > a.index {
                let d = ((a.rgb - b.rgb) * (a.rgb - b.rgb)).sum().squareRoot()
                #expect(d >= 0.4, "\(a.name) and \(b.name) are only \(d) apart")
            }
        }
    }

    @Test("lookup by name")
    func lookup() {
        #expect(Catalogue.named("red circle")?.index == 0)
        #expect(Catalogue.named("  Cyan   BAR ")?.shape == .bar)
        #expect(Catalogue.find(colour: "orange", shape: "ring")?.index == 5)
        #expect(Catalogue.named("red square") == nil)
        #expect(Catalogue.named("") == nil)
    }
}
