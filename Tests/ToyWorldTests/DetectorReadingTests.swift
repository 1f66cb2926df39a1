// The detector's reading against a prompt's request (ground truth in the loop): rendered scenes with a
// missing, a duplicated and an unasked object, and the relation verdicts on them.

import Foundation
import Testing
@testable import ToyWorld

@Suite struct DetectorReadingTests {
    let red = Catalogue.named("red circle")!, blue = Catalogue.named("blue square")!
    let green = Catalogue.named("green triangle")!, yellow = Catalogue.named("yellow star")!

    /// "a red circle to the left of a blue square" (edge 0) "and a green triangle above the red circle" (edge 1).
    var request: DetectorReading.Request {
        DetectorReading.Request(objects: ["red circle", "blue square", "green triangle"], edges: [
            .init(edge: 0, subject: 0, relation: .leftOf, object: 1),
            .init(edge: 1, subject: 2, relation: .above, object: 0),
        ])
    }

    func read(_ objects: [SceneObjectPlacement]) -> DetectorReading {
        DetectorReading.read(image: SceneRenderer().render(Scene(size: 32, objects: objects)), size: 32, asked: request)
    }

    @Test func everyObjectOnceAndBothRelationsHold() {
        let r = read([SceneObjectPlacement(objectClass: red, centre: SIMD2(8, 22), size: 8),
                      SceneObjectPlacement(objectClass: blue, centre: SIMD2(24, 22), size: 8),
                      SceneObjectPlacement(objectClass: green, centre: SIMD2(8, 7), size: 8)])
        #expect(r.objects.map(\.status) == [.found, .found, .found])
        #expect(r.unasked.isEmpty && r.exact)
        #expect(r.relation(edge: 0)?.holds == true && r.relation(edge: 0)?.read == [.leftOf])
        #expect(r.relation(edge: 1)?.holds == true && r.relation(edge: 1)?.read == [.above])
        #expect(!r.fools(edge: 0, probability: 0.99))
    }

    @Test func aMissingObjectLeavesItsRelationsUnjudgedAndFoolsAConfidentClassifier() {
        // No blue square: edge 0 cannot hold; edge 1 (triangle above circle) still does.
        let r = read([SceneObjectPlacement(objectClass: red, centre: SIMD2(8, 22), size: 8),
                      SceneObjectPlacement(objectClass: green, centre: SIMD2(8, 7), size: 8)])
        #expect(r.object("blue square")?.status == .missing && r.object("blue square")?.count == 0)
        #expect(r.object("red circle")?.status == .found && !r.exact)
        #expect(r.relation(edge: 0)?.holds == nil && r.relation(edge: 0)?.read == [])
        #expect(r.relation(edge: 1)?.holds == true)
        #expect(r.fools(edge: 0, probability: 0.99), "p 0.99 while the blue square is missing")
        #expect(!r.fools(edge: 0, probability: 0.2), "a classifier that says no is not fooled")
        #expect(!r.fools(edge: 1, probability: 0.99))
    }

    @Test func aDuplicateAndAnUnaskedObjectAreCountedAndTheWrongRelationIsRead() {
        // Two blue squares (the larger one left of the circle), no green triangle, and a yellow star nobody named.
        let r = read([SceneObjectPlacement(objectClass: red, centre: SIMD2(24, 22), size: 8),
                      SceneObjectPlacement(objectClass: blue, centre: SIMD2(7, 22), size: 10),
                      SceneObjectPlacement(objectClass: blue, centre: SIMD2(24, 7), size: 7),
                      SceneObjectPlacement(objectClass: yellow, centre: SIMD2(8, 7), size: 8)])
        #expect(r.object("blue square")?.status == .duplicated && r.object("blue square")?.count == 2)
        #expect(r.object("green triangle")?.status == .missing)
        #expect(r.unasked == [DetectorReading.Object(name: "yellow star", count: 1, asked: 0)])
        // Judged on the largest blue square: the red circle is to its right, not its left.
        #expect(r.relation(edge: 0)?.holds == false && r.relation(edge: 0)?.read == [.rightOf])
        #expect(r.fools(edge: 0, probability: 0.9))
    }

    @Test func aClassNamedTwiceIsAskedTwice() {
        let twice = DetectorReading.Request(objects: ["red circle", "red circle"],
                                            edges: [.init(edge: 0, subject: 0, relation: .leftOf, object: 1)])
        let one = SceneRenderer().render(Scene(size: 32, objects: [SceneObjectPlacement(objectClass: red, centre: SIMD2(8, 16), size: 8)]))
        let r = DetectorReading.read(image: one, size: 32, asked: twice)
        #expect(r.objects == [DetectorReading.Object(name: "red circle", count: 1, asked: 2)])
        #expect(r.objects[0].status == .missing && r.relation(edge: 0)?.holds == nil)
    }

    @Test func theReadingRoundTripsThroughJSON() throws {
        let r = read([SceneObjectPlacement(objectClass: red, centre: SIMD2(8, 22), size: 8)])
        let back = try JSONDecoder().decode(DetectorReading.self, from: JSONEncoder().encode(r))
        #expect(back == r)
    }
}
