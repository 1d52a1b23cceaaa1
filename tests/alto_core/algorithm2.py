"""The paper's Algorithm 2 (ALTO) in its two-buffer form, transcribed from PAPER.md in float64.

Deliberately naive and independent of alto_core: it keeps the previous
gradient and a as separate buffers, as the paper writes them, and uses Python
control flow per tensor. Tests compare alto_core against it.
"""

from __future__ import annotations

import torch


class Algorithm2:
    def __init__(
        self,
        params,
        *,
        lr,
        alpha,
        beta1,
        beta2,
        beta3,
        eps,
        weight_decays,
        bias_correction=True,
        trust_ratio="all",
    ):
        self.params = [p.detach().clone().double() for p in params]
        self.weight_decays = weight_decays  # one per tensor
        self.lr, self.alpha = lr, alpha
        self.beta1, self.beta2, self.beta3, self.eps = beta1, beta2, beta3, eps
        self.bias_correction, self.trust_ratio = bias_correction, trust_ratio
        self.prev_grad = [torch.zeros_like(p) for p in self.params]
        self.a = [torch.zeros_like(p) for p in self.params]
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.k = 0

    def step(self, grads):
        self.k += 1
        k = self.k
        for i, (theta, g) in enumerate(zip(self.params, grads, strict=True)):
            g = g.double()
            self.a[i] = self.beta1 * self.a[i] + (1 - self.beta1) * (g - self.prev_grad[i])
            self.prev_grad[i] = g.clone()
            g_mod = g + self.alpha * self.a[i]
            self.m[i] = self.beta2 * self.m[i] + (1 - self.beta2) * g_mod
            self.v[i] = self.beta3 * self.v[i] + (1 - self.beta3) * g_mod * g_mod
            if self.bias_correction:
                m_hat = self.m[i] / (1 - self.beta2**k)
                v_hat = self.v[i] / (1 - self.beta3**k)
            else:
                m_hat, v_hat = self.m[i], self.v[i]
            wd = self.weight_decays[i]
            r = m_hat / (torch.sqrt(v_hat) + self.eps) + wd * theta
            applies = self.trust_ratio == "all" or (self.trust_ratio == "decayed" and wd != 0)
            trust = 1.0
            p_norm, r_norm = float(theta.norm()), float(r.norm())
            if applies and p_norm > 0 and r_norm > 0:
                trust = p_norm / r_norm
            self.params[i] = theta - self.lr * trust * r
