import Testing
import Relations
import Steering

@Suite("Evaluation fidelity: exact, duplicate, unasked")
struct EvaluationFidelityTests {
    func record() -> EvalRecord {
        EvalRecord(index: 0, prompt: "a red circle to the left of a blue square", seed: 0, mode: "base",
                   objects: ["red circle", "blue square"], found: [true, true], relations: ["red circle left of blue square"],
                   satisfied: [true], seconds: 1)
    }

    @Test("one of each named object and nothing else is exact")
    func exact() {
        var r = record()
        r.setInstances(["red circle": 1, "blue square": 1], named: ["red circle", "blue square"])
        #expect(r.exact == true && r.duplicate == false && r.unasked == false)
    }

    @Test("a duplicated named object, an unasked object, a missing one")
    func failures() {
        var dup = record()
        dup.setInstances(["red circle": 1, "blue square": 2], named: ["red circle", "blue square"])
        #expect(dup.exact == false && dup.duplicate == true && dup.unasked == false)
        var extra = record()
        extra.setInstances(["red circle": 1, "blue square": 1, "green triangle": 1], named: ["red circle", "blue square"])
        #expect(extra.exact == false && extra.duplicate == false && extra.unasked == true)
        var missing = record()
        missing.setInstances(["red circle": 1], named: ["red circle", "blue square"])
        #expect(missing.exact == false && missing.duplicate == false && missing.unasked == false)
        #expect(missing.instances == ["red circle": 1])
    }

    @Test("the summary averages fidelity over the records that carry it")
    func summary() {
        var a = record(), b = record()
        a.setInstances(["red circle": 1, "blue square": 1], named: ["red circle", "blue square"])
        b.setInstances(["red circle": 2, "blue square": 1, "cyan bar": 1], named: ["red circle", "blue square"])
        let old = record()   // written before fidelity existed
        let s = EvalSummary(records: [a, b, old])
        #expect(s.exact == 0.5 && s.duplicate == 0.5 && s.unasked == 0.5)
        #expect(EvalSummary(records: [old]).exact == nil)
    }
}
