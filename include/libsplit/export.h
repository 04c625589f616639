/* Symbol visibility. libsplit is built with hidden visibility: only what its public headers
 * declare is exported from the shared library (the C++ headers wrap their declarations in
 * LIBSPLIT_PUBLIC_BEGIN/END, the C header marks each function LIBSPLIT_API); LibTorch, Asio,
 * spdlog and the internals stay private. */
#ifndef LIBSPLIT_EXPORT_H
#define LIBSPLIT_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define LIBSPLIT_API __attribute__((visibility("default")))
#define LIBSPLIT_PUBLIC_BEGIN _Pragma("GCC visibility push(default)")
#define LIBSPLIT_PUBLIC_END _Pragma("GCC visibility pop")
#else
#define LIBSPLIT_API
#define LIBSPLIT_PUBLIC_BEGIN
#define LIBSPLIT_PUBLIC_END
#endif

#endif /* LIBSPLIT_EXPORT_H */
