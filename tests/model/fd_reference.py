#!/usr/bin/env python3
"""Independent Frechet distance for tests/model/test_fdist.c (pure Python, no LAPACK).

The features are integer formulas divided by 32, exact in float32, so C and Python see the
same numbers. Mean and unbiased covariance are computed with math.fsum (exactly rounded sums);
tr sqrt(S1 S2) comes from the Denman-Beavers iteration on the non-symmetric product S1 S2
(Y -> sqrt(A), Z -> sqrt(A)^-1), not from an eigendecomposition as in model/fdist.c.
Run: python3 tests/model/fd_reference.py   (prints the value stored in the test)
"""
import math

N, M, D = 300, 250, 6


def feat_x(i, d):
    return ((i * i * 7 + i * d * 13 + d * 5) % 97) / 32.0 - 1.5


def feat_y(i, d):
    return ((i * 11 + d * d * 3 + (i // 3) * (d + 1)) % 89) / 32.0 - 1.0 + (((i * (d + 2)) % 7) / 32.0)


def moments(rows):
    n = len(rows)
    mu = [math.fsum(r[d] for r in rows) / n for d in range(D)]
    cov = [[math.fsum((r[a] - mu[a]) * (r[b] - mu[b]) for r in rows) / (n - 1)
            for b in range(D)] for a in range(D)]
    return mu, cov


def matmul(A, B):
    return [[math.fsum(A[i][k] * B[k][j] for k in range(len(B))) for j in range(len(B[0]))]
            for i in range(len(A))]


def inverse(A):
    n = len(A)
    M_ = [list(A[i]) + [1.0 if i == j else 0.0 for j in range(n)] for i in range(n)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(M_[r][c]))
        M_[c], M_[p] = M_[p], M_[c]
        piv = M_[c][c]
        M_[c] = [v / piv for v in M_[c]]
        for r in range(n):
            if r != c:
                f = M_[r][c]
                M_[r] = [a - f * b for a, b in zip(M_[r], M_[c])]
    return [row[n:] for row in M_]


def sqrtm_db(A, iters=60):
    n = len(A)
    Y = [list(r) for r in A]
    Z = [[1.0 if i == j else 0.0 for j in range(n)] for i in range(n)]
    for _ in range(iters):
        Yi, Zi = inverse(Y), inverse(Z)
        Y, Z = ([[0.5 * (Y[i][j] + Zi[i][j]) for j in range(n)] for i in range(n)],
                [[0.5 * (Z[i][j] + Yi[i][j]) for j in range(n)] for i in range(n)])
    return Y


X = [[feat_x(i, d) for d in range(D)] for i in range(N)]
Yf = [[feat_y(i, d) for d in range(D)] for i in range(M)]
mu1, S1 = moments(X)
mu2, S2 = moments(Yf)
R = sqrtm_db(matmul(S1, S2))
fd = (math.fsum((a - b) ** 2 for a, b in zip(mu1, mu2)) + math.fsum(S1[k][k] for k in range(D))
      + math.fsum(S2[k][k] for k in range(D)) - 2 * math.fsum(R[k][k] for k in range(D)))
print(repr(fd))
