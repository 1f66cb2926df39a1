// Preview images: sizes, area averaging, palette mapping.

import Testing
import Imaging
@testable import Workbench

@Suite struct ImageFitterTests {
    @Test func fittedSizeKeepsAspectAndFillsTheBox() {
        #expect(ImageFitter.fittedSize(width: 32, height: 32, boxWidth: 100, boxHeight: 70) == (70, 70))
        #expect(ImageFitter.fittedSize(width: 32, height: 32, boxWidth: 40, boxHeight: 20) == (20, 20))
        #expect(ImageFitter.fittedSize(width: 512, height: 256, boxWidth: 64, boxHeight: 64) == (64, 32))
        #expect(ImageFitter.fittedSize(width: 32, height: 32, boxWidth: 0, boxHeight: 10) == (0, 0))
        #expect(ImageFitter.fittedSize(width: 1000, height: 1, boxWidth: 10, boxHeight: 10) == (10, 1))
    }

    @Test func areaAverageOfAFlatImageIsFlat() {
        let img = RGBImage(width: 5, height: 5, pixels: [UInt8](repeating: 200, count: 75))
        let out = ImageFitter.resample(img, width: 3, height: 2)
        #expect(out.pixels.allSatisfy { $0 == 200 })
        // Two columns, black and white → one pixel of mid grey.
        let bw = RGBImage(width: 2, height: 1, pixels: [0, 0, 0, 255, 255, 255])
        #expect(ImageFitter.resample(bw, width: 1, height: 1).pixels == [128, 128, 128])
    }

    @Test func paletteIndicesAreNearestInTheRightRanges() {
        let img = RGBImage(width: 3, height: 1, pixels: [255, 0, 0, 0, 0, 0, 255, 255, 255])
        let f = ImageFitter.colorize(img)
        #expect(f.index256 == [196, 16, 231])
        #expect(f.index8[0] == 1 && f.index8[1] == 0 && f.index8[2] == 7)
        #expect(f.luma[1] == 0 && f.luma[2] == 255)
        #expect(f.index256.allSatisfy { $0 >= 16 })
    }

    @Test func enlargingIsNearestNeighbour() {
        let img = RGBImage(width: 2, height: 1, pixels: [0, 0, 0, 255, 255, 255])
        #expect(ImageFitter.resample(img, width: 3, height: 1).pixels == [0, 0, 0, 0, 0, 0, 255, 255, 255])
    }

    @Test func chwFloatsBecomeBytes() {
        let img = RGBImage(chw: [-1, 1, 0, 0.5, 1, -1], width: 2, height: 1)
        #expect(img.pixels == [0, 128, 255, 255, 191, 0])
        let nan = RGBImage(chw: [.nan, .nan, .nan], width: 1, height: 1)
        #expect(nan.pixels == [0, 0, 0])
    }
}
