import Testing
@testable import Diffusion

@Test func diffusionLinks() {}
