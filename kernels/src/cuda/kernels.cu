// CUDA versions of the nines kernels. Each mirrors its CPU reference in
// kernels/src/*.rs operation for operation (f32, no fused multiply-add: the
// host compiles with --fmad=false) so the conformance test can hold them to
// tight tolerances. Parameter blocks are laid out by the Rust `params()`.

// Lens block: fx fy cx cy width height kind k[5] max_r2 (13 floats).
__device__ __forceinline__ bool lens_project(const float* L, float x3, float y3, float z3,
                                             float min_depth, float* u, float* v) {
    if (!(z3 > min_depth)) return false;
    float inv_z = 1.0f / z3;
    float x = x3 * inv_z, y = y3 * inv_z;
    if (!(x * x + y * y <= L[12])) return false;
    int kind = (int)L[6];
    const float* k = L + 7;
    float xd = x, yd = y;
    if (kind == 1) {
        float r2 = x * x + y * y;
        float radial = 1.0f + r2 * (k[0] + r2 * (k[1] + r2 * k[4]));
        xd = x * radial + 2.0f * k[2] * x * y + k[3] * (r2 + 2.0f * x * x);
        yd = y * radial + k[2] * (r2 + 2.0f * y * y) + 2.0f * k[3] * x * y;
    } else if (kind == 2) {
        float r = sqrtf(x * x + y * y);
        if (r >= 1e-9f) {
            float theta = atanf(r);
            float t2 = theta * theta;
            float theta_d = theta * (1.0f + t2 * (k[0] + t2 * (k[1] + t2 * (k[2] + t2 * k[3]))));
            float s = theta_d / r;
            xd = x * s;
            yd = y * s;
        }
    }
    *u = L[0] * xd + L[2];
    *v = L[1] * yd + L[3];
    return true;
}

// Projection block: camera_from_points (3x4 row-major), lens (13), min depth.
extern "C" __global__ void project_points(const float* __restrict__ points, unsigned int n,
                                          const float* __restrict__ P, unsigned int* __restrict__ zbuf) {
    __shared__ float s[26];
    if (threadIdx.x < 26) s[threadIdx.x] = P[threadIdx.x];
    __syncthreads();
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float px = points[3 * i], py = points[3 * i + 1], pz = points[3 * i + 2];
    float x = s[0] * px + s[1] * py + s[2] * pz + s[3];
    float y = s[4] * px + s[5] * py + s[6] * pz + s[7];
    float z = s[8] * px + s[9] * py + s[10] * pz + s[11];
    float u, v;
    if (!lens_project(s + 12, x, y, z, s[25], &u, &v)) return;
    float col = floorf(u + 0.5f), row = floorf(v + 0.5f);
    float w = s[16], h = s[17];
    if (!(col >= 0.0f && row >= 0.0f && col < w && row < h)) return;
    unsigned int idx = (unsigned int)row * (unsigned int)w + (unsigned int)col;
    // Complemented bits: the largest is the nearest positive depth.
    atomicMax(&zbuf[idx], ~__float_as_uint(z));
}

// Warp block: ray_from_pixel (9), real lens (13), out w, out h, samples, pad,
// scale[3], offset[3], fill[3].
extern "C" __global__ void warp_image(const unsigned char* __restrict__ src, unsigned int sw, unsigned int sh,
                                      const float* __restrict__ P, float* __restrict__ out) {
    __shared__ float s[35];
    if (threadIdx.x + threadIdx.y * blockDim.x < 35) s[threadIdx.x + threadIdx.y * blockDim.x] = P[threadIdx.x + threadIdx.y * blockDim.x];
    __syncthreads();
    unsigned int ow = (unsigned int)s[22], oh = (unsigned int)s[23];
    unsigned int col = blockIdx.x * blockDim.x + threadIdx.x;
    unsigned int row = blockIdx.y * blockDim.y + threadIdx.y;
    if (col >= ow || row >= oh) return;
    const float* m = s;
    const float* L = s + 9;
    unsigned int n = (unsigned int)s[24];
    float step = 1.0f / (float)n;
    float sum0 = 0.0f, sum1 = 0.0f, sum2 = 0.0f;
    unsigned int count = 0;
    float fw = (float)sw, fh = (float)sh;
    for (unsigned int j = 0; j < n; ++j) {
        float v = (float)row + ((float)j + 0.5f) * step - 0.5f;
        for (unsigned int i = 0; i < n; ++i) {
            float u = (float)col + ((float)i + 0.5f) * step - 0.5f;
            float rx = m[0] * u + m[1] * v + m[2];
            float ry = m[3] * u + m[4] * v + m[5];
            float rz = m[6] * u + m[7] * v + m[8];
            float us, vs;
            if (!lens_project(L, rx, ry, rz, 1e-6f, &us, &vs)) continue;
            if (!(us >= -0.5f && vs >= -0.5f && us <= fw - 0.5f && vs <= fh - 0.5f)) continue;
            float x0 = floorf(us), y0 = floorf(vs);
            float ax = us - x0, ay = vs - y0;
            unsigned int xa = (unsigned int)fminf(fmaxf(x0, 0.0f), fw - 1.0f);
            unsigned int xb = (unsigned int)fminf(fmaxf(x0 + 1.0f, 0.0f), fw - 1.0f);
            unsigned int ya = (unsigned int)fminf(fmaxf(y0, 0.0f), fh - 1.0f);
            unsigned int yb = (unsigned int)fminf(fmaxf(y0 + 1.0f, 0.0f), fh - 1.0f);
            const unsigned char* ra = src + (size_t)ya * sw * 3;
            const unsigned char* rb = src + (size_t)yb * sw * 3;
            float c[3];
            for (int ch = 0; ch < 3; ++ch) {
                float paa = (float)ra[xa * 3 + ch], pba = (float)ra[xb * 3 + ch];
                float pab = (float)rb[xa * 3 + ch], pbb = (float)rb[xb * 3 + ch];
                float top = paa + ax * (pba - paa);
                float bottom = pab + ax * (pbb - pab);
                c[ch] = top + ay * (bottom - top);
            }
            sum0 += c[0];
            sum1 += c[1];
            sum2 += c[2];
            count += 1;
        }
    }
    unsigned int plane = ow * oh;
    unsigned int at = row * ow + col;
    if (count == 0) {
        out[at] = s[32];
        out[plane + at] = s[33];
        out[2 * plane + at] = s[34];
        return;
    }
    float inv = 1.0f / (float)count;
    out[at] = sum0 * inv * s[26] + s[29];
    out[plane + at] = sum1 * inv * s[27] + s[30];
    out[2 * plane + at] = sum2 * inv * s[28] + s[31];
}
