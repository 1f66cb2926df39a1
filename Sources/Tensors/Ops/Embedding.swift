import Foundation

// Table lookup (token and position embeddings): rows of a [num, dim] table gathered by index.
// Backward scatter-adds each output row's gradient into the row it came from, so repeated indices
// accumulate.

/// Rows `indices` of `table` [num, dim] as a [indices.count, dim] tensor (reshape for batch axes), as
/// PyTorch's `F.embedding`. Differentiable in the table. An index outside 0..<num stops the program
/// with a message naming it, in release builds too (a bad token id must not read stray memory).
public func embedding(_ table: Tensor, indices: [Int]) -> Tensor {
    precondition(table.rank == 2, "embedding: table must be [num, dim], got \(table.shape)")
    let num = table.shape[0], dim = table.shape[1]
    for (position, index) in indices.enumerated() where index < 0 || index >= num {
        fatalError("embedding: index \(index) at position \(position) is out of range 0..<\(num)")
    }
    let out = Tensor(uninitialized: [indices.count, dim])
    let src = table.pointer, dst = out.pointer
    indices.withUnsafeBufferPointer { idx in
        parallelFor(idx.count, costPerItem: dim, grain: 1 << 16) { range in
            for r in range { (dst + r * dim).update(from: src + idx[r] * dim, count: dim) }
        }
    }
    return out.recorded("embedding", [table]) { g in
        let gt = Tensor(zeros: table.shape)
        let pg = g.pointer, pt = gt.pointer
        for (r, index) in indices.enumerated() {
            let row = pt + index * dim, grow = pg + r * dim
            for j in 0..<dim { row[j] += grow[j] }
        }
        return [gt]
    }
}
