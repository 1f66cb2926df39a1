import Testing
@testable import ToyWorld

@Test func toyworldLinks() {}
