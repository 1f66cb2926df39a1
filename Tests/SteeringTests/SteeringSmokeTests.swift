import Testing
@testable import Steering

@Test func steeringLinks() {}
