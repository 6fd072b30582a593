#include "cuda/cublaslt_library.h"

#include <dlfcn.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "engine/api/check.h"

namespace muserve::cuda {
namespace {

// The soname of the cuBLAS the headers belong to, e.g. libcublasLt.so.13.
std::string Soname() { return absl::StrCat("libcublasLt.so.", CUBLAS_VER_MAJOR); }

template <class Fn>
bool Resolve(void* handle, const char* name, Fn& fn, std::string& missing) {
  fn = reinterpret_cast<Fn>(dlsym(handle, name));
  if (fn == nullptr) missing = name;
  return fn != nullptr;
}

struct Loaded {
  CublasLtLibrary library{};
  absl::Status status;
};

Loaded Load() {
  Loaded loaded;
  const std::string soname = Soname();
  // Never closed: GEMM plans and handles live until exit.
  void* handle = dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* error = dlerror();
    loaded.status = absl::UnavailableError(
        absl::StrCat("cannot load ", soname, " (cuBLASLt): ", error != nullptr ? error : "?"));
    return loaded;
  }
  CublasLtLibrary& l = loaded.library;
  std::string missing;
  const bool ok =
      Resolve(handle, "cublasLtCreate", l.Create, missing) &&
      Resolve(handle, "cublasLtDestroy", l.Destroy, missing) &&
      Resolve(handle, "cublasLtGetStatusName", l.GetStatusName, missing) &&
      Resolve(handle, "cublasLtGetStatusString", l.GetStatusString, missing) &&
      Resolve(handle, "cublasLtMatmul", l.Matmul, missing) &&
      Resolve(handle, "cublasLtMatmulAlgoGetHeuristic", l.MatmulAlgoGetHeuristic, missing) &&
      Resolve(handle, "cublasLtMatmulDescCreate", l.MatmulDescCreate, missing) &&
      Resolve(handle, "cublasLtMatmulDescDestroy", l.MatmulDescDestroy, missing) &&
      Resolve(handle, "cublasLtMatmulDescSetAttribute", l.MatmulDescSetAttribute, missing) &&
      Resolve(handle, "cublasLtMatmulPreferenceCreate", l.MatmulPreferenceCreate, missing) &&
      Resolve(handle, "cublasLtMatmulPreferenceDestroy", l.MatmulPreferenceDestroy, missing) &&
      Resolve(handle, "cublasLtMatmulPreferenceSetAttribute", l.MatmulPreferenceSetAttribute,
              missing) &&
      Resolve(handle, "cublasLtMatrixLayoutCreate", l.MatrixLayoutCreate, missing) &&
      Resolve(handle, "cublasLtMatrixLayoutDestroy", l.MatrixLayoutDestroy, missing);
  if (!ok)
    loaded.status =
        absl::UnavailableError(absl::StrCat(soname, " has no symbol ", missing, " (cuBLASLt)"));
  return loaded;
}

const Loaded& Instance() {
  static const Loaded* loaded = new Loaded(Load());
  return *loaded;
}

}  // namespace

absl::StatusOr<const CublasLtLibrary*> LoadCublasLt() {
  const Loaded& loaded = Instance();
  if (!loaded.status.ok()) return loaded.status;
  return &loaded.library;
}

const CublasLtLibrary& CublasLt() {
  const Loaded& loaded = Instance();
  MUSERVE_CHECK(loaded.status.ok());
  return loaded.library;
}

}  // namespace muserve::cuda
