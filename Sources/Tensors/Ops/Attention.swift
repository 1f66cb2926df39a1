import Foundation

// Scaled dot-product attention built from batched GEMMs and a row softmax. It can hand back its
// probabilities, which is how the diffusion layer captures cross-attention maps (and, with the tape
// on, lets a loss on those maps reach the latent).

/// Output and, when asked, the attention probabilities softmax(q·kᵀ·scale).
public struct AttentionResult {
    public let output: Tensor
    public let probabilities: Tensor?
}

/// softmax(q·kᵀ·scale)·v over [..., Lq, D] × [..., Lk, D] × [..., Lk, Dv] (batch and head axes in front).
/// `scale` defaults to 1/√D as in PyTorch's `scaled_dot_product_attention`.
public func scaledDotProductAttention(query q: Tensor, key k: Tensor, value v: Tensor, scale: Float? = nil,
                                      returnProbabilities: Bool = false) -> AttentionResult {
    let d = q.shape.last!
    let s = scale ?? 1 / Float(d).squareRoot()
    let scores = q.matmul(k, transposeOther: true) * s
    let probs = scores.softmax()
    let out = probs.matmul(v)
    return AttentionResult(output: out, probabilities: returnProbabilities ? probs : nil)
}
