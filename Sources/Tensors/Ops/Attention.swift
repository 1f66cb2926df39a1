import Foundation

// Scaled dot-product attention built from batched GEMMs and a row softmax. It can hand back its
// probabilities, which is how the diffusion layer captures cross-attention maps (and, with the tape
// on, lets a loss on those maps reach the latent).

/// Output and, when asked, the attention probabilities softmax(q·kᵀ·scale).
public struct AttentionResult {
    public let output: Tensor
    public let probabilities: Tensor?
}

/// softmax(q·kᵀ·scale + mask)·v over [..., Lq, D] × [..., Lk, D] × [..., Lk, Dv] (batch and head axes
/// in front). `scale` defaults to 1/√D as in PyTorch's `scaled_dot_product_attention`; `mask` is added
/// to the scores (broadcast; use -inf or a large negative number to hide a key, e.g. a causal mask).
public func scaledDotProductAttention(query q: Tensor, key k: Tensor, value v: Tensor, scale: Float? = nil,
                                      mask: Tensor? = nil, returnProbabilities: Bool = false) -> AttentionResult {
    let d = q.shape.last!
    let s = scale ?? 1 / Float(d).squareRoot()
    var scores = q.matmul(k, transposeOther: true) * s
    if let mask { scores = scores + mask }
    let probs = scores.softmax()
    let out = probs.matmul(v)
    return AttentionResult(output: out, probabilities: returnProbabilities ? probs : nil)
}

/// An additive causal mask [L, L]: 0 on and below the diagonal, -inf above (CLIP's text encoder).
public func causalMask(_ length: Int) -> Tensor {
    let m = Tensor(zeros: [length, length])
    for i in 0..<length { for j in (i + 1)..<max(length, i + 1) { m.pointer[i * length + j] = -.infinity } }
    return m
}
