#include "cuda/gemm.h"

#include <cublasLt.h>

#include <cstdint>
#include <string>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "cuda/cublas_status.h"
#include "cuda/cublaslt_library.h"
#include "cuda/device_buffer.h"
#include "engine/api/absl_string_view.h"

namespace muserve::cuda {
namespace {

absl::Status BadArg(const char* field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("GemmArgs.", field, ": ", what));
}

cudaDataType_t CudaType(DType dtype) {
  switch (dtype) {
    case DType::kBF16:
      return CUDA_R_16BF;
    case DType::kF16:
      return CUDA_R_16F;
    case DType::kF32:
      return CUDA_R_32F;
  }
  return CUDA_R_32F;
}

// The largest power of two up to 256 dividing the address: what cuBLASLt's
// heuristic must be told, since its default assumes 256-byte aligned
// matrices (a row offset into an activation buffer is not).
uint32_t AlignmentOf(const void* p) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  uint32_t alignment = 256;
  while (alignment > 1 && address % alignment != 0) alignment /= 2;
  return alignment;
}

// Everything the algorithm choice and the descriptors depend on.
struct PlanKey {
  DType dtype;
  DType out_dtype;
  int64_t m, n, k, lda, ldo;
  bool bias;
  bool accumulate;
  uint32_t align_a, align_w, align_out, align_bias;

  auto Tie() const {
    return std::tie(dtype, out_dtype, m, n, k, lda, ldo, bias, accumulate, align_a, align_w,
                    align_out, align_bias);
  }
  bool operator==(const PlanKey& other) const { return Tie() == other.Tie(); }
  template <class H>
  friend H AbslHashValue(H h, const PlanKey& key) {
    return H::combine(std::move(h), key.Tie());
  }
};

PlanKey KeyOf(const GemmArgs& args) {
  return PlanKey{args.dtype,
                 args.out_dtype,
                 args.m,
                 args.n,
                 args.k,
                 args.lda,
                 args.ldo,
                 args.bias != nullptr,
                 args.beta != 0.0f,
                 AlignmentOf(args.a),
                 AlignmentOf(args.w),
                 AlignmentOf(args.out),
                 args.bias != nullptr ? AlignmentOf(args.bias) : 256u};
}

// cuBLASLt descriptors, destroyed with their owner.
struct DescDeleter {
  void operator()(cublasLtMatmulDescOpaque_t* desc) const { CublasLt().MatmulDescDestroy(desc); }
  void operator()(cublasLtMatrixLayoutOpaque_t* layout) const {
    CublasLt().MatrixLayoutDestroy(layout);
  }
  void operator()(cublasLtMatmulPreferenceOpaque_t* pref) const {
    CublasLt().MatmulPreferenceDestroy(pref);
  }
};
using MatmulDesc = std::unique_ptr<cublasLtMatmulDescOpaque_t, DescDeleter>;
using MatrixLayout = std::unique_ptr<cublasLtMatrixLayoutOpaque_t, DescDeleter>;
using Preference = std::unique_ptr<cublasLtMatmulPreferenceOpaque_t, DescDeleter>;

absl::StatusOr<MatrixLayout> NewLayout(DType dtype, int64_t rows, int64_t cols, int64_t ld) {
  cublasLtMatrixLayout_t layout = nullptr;
  MUSERVE_GPU_RETURN_IF_ERROR(CublasLt().MatrixLayoutCreate(
      &layout, CudaType(dtype), static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), ld));
  return MatrixLayout(layout);
}

// One shape's descriptors and algorithm. In cuBLASLt's column-major terms
// (see gemm.h) the GEMM is D[N, M] = op(A) . B with A = w as [K, N] (ld K,
// op T), B = a as [K, M] (ld lda), C = D = out as [N, M] (ld ldo).
struct Plan {
  MatmulDesc desc;
  MatrixLayout w_layout;
  MatrixLayout a_layout;
  MatrixLayout out_layout;
  cublasLtMatmulAlgo_t algo;
};

}  // namespace

absl::Status ValidateGemmArgs(const GemmArgs& args) {
  if (args.dtype != DType::kBF16 && args.dtype != DType::kF16)
    return BadArg("dtype",
                  absl::StrCat("must be BF16 or F16, got ", AsAbsl(DTypeName(args.dtype))));
  if (args.out_dtype != args.dtype && args.out_dtype != DType::kF32)
    return BadArg("out_dtype", absl::StrCat("must be dtype (", AsAbsl(DTypeName(args.dtype)),
                                            ") or F32, got ", AsAbsl(DTypeName(args.out_dtype))));
  if (args.m < 0) return BadArg("m", absl::StrCat("must be >= 0, got ", args.m));
  if (args.n <= 0) return BadArg("n", absl::StrCat("must be > 0, got ", args.n));
  if (args.k <= 0) return BadArg("k", absl::StrCat("must be > 0, got ", args.k));
  if (args.lda < args.k) return BadArg("lda", absl::StrCat(args.lda, " is less than k = ", args.k));
  if (args.ldo < args.n) return BadArg("ldo", absl::StrCat(args.ldo, " is less than n = ", args.n));
  if (args.a == nullptr) return BadArg("a", "is null");
  if (args.w == nullptr) return BadArg("w", "is null");
  if (args.out == nullptr) return BadArg("out", "is null");
  if (args.beta != 0.0f && args.beta != 1.0f)
    return BadArg("beta", absl::StrCat("must be 0 or 1, got ", args.beta));
  if (args.beta == 1.0f && args.out_dtype != DType::kF32)
    return BadArg("beta", "1 (accumulate into out) needs out_dtype F32");
  if (args.bias != nullptr && args.out_dtype != args.dtype)
    return BadArg("bias",
                  "is only supported with out_dtype == dtype (cuBLASLt reads the bias "
                  "in the output's type)");
  return absl::OkStatus();
}

// Invariant: every plan in plans_ was made by this handle with the
// workspace size of workspace_, so any of them may run on it.
class GemmRunner::Impl {
 public:
  Impl(cudaStream_t stream, cublasLtHandle_t handle, DeviceBuffer workspace)
      : stream_(stream), handle_(handle), workspace_(std::move(workspace)) {}
  ~Impl() { CublasLt().Destroy(handle_); }

  absl::Status Run(const GemmArgs& args) {
    if (absl::Status s = ValidateGemmArgs(args); !s.ok()) return s;
    if (args.m == 0) return absl::OkStatus();
    const PlanKey key = KeyOf(args);
    auto it = plans_.find(key);
    if (it == plans_.end()) {
      absl::StatusOr<Plan> plan = MakePlan(args);
      if (!plan.ok()) return plan.status();
      it = plans_.emplace(key, *std::move(plan)).first;
    }
    Plan& plan = it->second;
    if (args.bias != nullptr) {
      MUSERVE_GPU_RETURN_IF_ERROR(CublasLt().MatmulDescSetAttribute(
          plan.desc.get(), CUBLASLT_MATMUL_DESC_BIAS_POINTER, &args.bias, sizeof(args.bias)));
    }
    const float alpha = 1.0f;
    const float beta = args.beta;
    MUSERVE_GPU_RETURN_IF_ERROR(CublasLt().Matmul(
        handle_, plan.desc.get(), &alpha, args.w, plan.w_layout.get(), args.a, plan.a_layout.get(),
        &beta, args.out, plan.out_layout.get(), args.out, plan.out_layout.get(), &plan.algo,
        workspace_.get(), static_cast<size_t>(workspace_.bytes()), stream_));
    return absl::OkStatus();
  }

 private:
  absl::StatusOr<Plan> MakePlan(const GemmArgs& args) {
    Plan plan;
    cublasLtMatmulDesc_t desc = nullptr;
    MUSERVE_GPU_RETURN_IF_ERROR(CublasLt().MatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    plan.desc.reset(desc);
    const cublasOperation_t transpose = CUBLAS_OP_T;
    MUSERVE_GPU_RETURN_IF_ERROR(CublasLt().MatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA,
                                                                  &transpose, sizeof(transpose)));
    if (args.bias != nullptr) {
      const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
      MUSERVE_GPU_RETURN_IF_ERROR(CublasLt().MatmulDescSetAttribute(
          desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
      const int32_t bias_type = CudaType(args.dtype);
      MUSERVE_GPU_RETURN_IF_ERROR(CublasLt().MatmulDescSetAttribute(
          desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)));
      // The heuristic reads the pointer's alignment.
      MUSERVE_GPU_RETURN_IF_ERROR(CublasLt().MatmulDescSetAttribute(
          desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &args.bias, sizeof(args.bias)));
    }
    absl::StatusOr<MatrixLayout> w_layout = NewLayout(args.dtype, args.k, args.n, args.k);
    if (!w_layout.ok()) return w_layout.status();
    plan.w_layout = *std::move(w_layout);
    absl::StatusOr<MatrixLayout> a_layout = NewLayout(args.dtype, args.k, args.m, args.lda);
    if (!a_layout.ok()) return a_layout.status();
    plan.a_layout = *std::move(a_layout);
    absl::StatusOr<MatrixLayout> out_layout = NewLayout(args.out_dtype, args.n, args.m, args.ldo);
    if (!out_layout.ok()) return out_layout.status();
    plan.out_layout = *std::move(out_layout);

    cublasLtMatmulPreference_t raw_pref = nullptr;
    MUSERVE_GPU_RETURN_IF_ERROR(CublasLt().MatmulPreferenceCreate(&raw_pref));
    Preference pref(raw_pref);
    const uint64_t workspace_bytes = static_cast<uint64_t>(workspace_.bytes());
    MUSERVE_GPU_RETURN_IF_ERROR(
        CublasLt().MatmulPreferenceSetAttribute(raw_pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                &workspace_bytes, sizeof(workspace_bytes)));
    const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> alignments[] = {
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, AlignmentOf(args.w)},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, AlignmentOf(args.a)},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, AlignmentOf(args.out)},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, AlignmentOf(args.out)},
    };
    for (const auto& [attribute, bytes] : alignments) {
      MUSERVE_GPU_RETURN_IF_ERROR(
          CublasLt().MatmulPreferenceSetAttribute(raw_pref, attribute, &bytes, sizeof(bytes)));
    }

    cublasLtMatmulHeuristicResult_t result = {};
    int found = 0;
    MUSERVE_GPU_RETURN_IF_ERROR(CublasLt().MatmulAlgoGetHeuristic(
        handle_, desc, plan.w_layout.get(), plan.a_layout.get(), plan.out_layout.get(),
        plan.out_layout.get(), raw_pref, 1, &result, &found));
    if (found == 0 || result.state != CUBLAS_STATUS_SUCCESS) {
      return absl::InternalError(absl::StrCat(
          "cuBLASLt has no algorithm for GEMM m=", args.m, " n=", args.n, " k=", args.k,
          " lda=", args.lda, " ldo=", args.ldo, " dtype=", AsAbsl(DTypeName(args.dtype)),
          " out_dtype=", AsAbsl(DTypeName(args.out_dtype)), " bias=", args.bias != nullptr,
          " within a workspace of ", workspace_.bytes(), " bytes"));
    }
    plan.algo = result.algo;
    return plan;
  }

  cudaStream_t stream_;
  cublasLtHandle_t handle_;
  DeviceBuffer workspace_;
  absl::flat_hash_map<PlanKey, Plan> plans_;
};

absl::StatusOr<std::unique_ptr<GemmRunner>> GemmRunner::Create(cudaStream_t stream,
                                                               int64_t workspace_bytes) {
  if (workspace_bytes < 0)
    return absl::InvalidArgumentError(
        absl::StrCat("GemmRunner workspace_bytes must be >= 0, got ", workspace_bytes));
  if (absl::StatusOr<const CublasLtLibrary*> library = LoadCublasLt(); !library.ok())
    return library.status();
  absl::StatusOr<DeviceBuffer> workspace = DeviceBuffer::Allocate(workspace_bytes);
  if (!workspace.ok()) return workspace.status();
  cublasLtHandle_t handle = nullptr;
  MUSERVE_GPU_RETURN_IF_ERROR(CublasLt().Create(&handle));
  return std::unique_ptr<GemmRunner>(
      new GemmRunner(std::make_unique<Impl>(stream, handle, *std::move(workspace))));
}

GemmRunner::GemmRunner(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GemmRunner::~GemmRunner() = default;

absl::Status GemmRunner::Run(const GemmArgs& args) { return impl_->Run(args); }

}  // namespace muserve::cuda
