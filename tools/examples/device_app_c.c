/* A minimal device app on the C API: classify one binary PGM (P5) image with the bundle's
 * default split, the head here and the tail on split-server.
 *   device_app_c HOST:PORT BUNDLE_DIR IMAGE.pgm */
#include <stdio.h>
#include <stdlib.h>

#include "libsplit/libsplit_c.h"

static int fail(const char* what) {
  fprintf(stderr, "device_app_c: %s: %s\n", what, ls_last_error());
  return 1;
}

int main(int argc, char** argv) {
  ls_bundle* bundle = NULL;
  ls_client* client = NULL;
  ls_session* session = NULL;
  uint32_t h = 0, w = 0, c = 0, maxval = 0, ih = 0, iw = 0;
  unsigned char pixels[1 << 16];
  ls_class_score top[1];
  ls_timings t;
  size_t n = 0;
  int rc = 1;
  if (argc != 4) return fprintf(stderr, "usage: device_app_c HOST:PORT BUNDLE_DIR IMAGE.pgm\n"), 2;

  FILE* f = fopen(argv[3], "rb");
  if (!f) return fprintf(stderr, "device_app_c: cannot open %s\n", argv[3]), 1;
  int ok = fscanf(f, "P5 %u %u %u", &iw, &ih, &maxval) == 3 && fgetc(f) != EOF && maxval == 255 &&
           (size_t)iw * ih <= sizeof pixels && fread(pixels, 1, (size_t)iw * ih, f) == (size_t)iw * ih;
  fclose(f);
  if (!ok) return fprintf(stderr, "device_app_c: %s is not an 8-bit binary PGM image\n", argv[3]), 1;

  if (ls_bundle_open(argv[2], 0, &bundle) != LS_OK) return fail("bundle");
  if (ls_bundle_input(bundle, &h, &w, &c) != LS_OK || c != 1 || h != ih || w != iw) {
    fprintf(stderr, "device_app_c: the bundle takes %ux%ux%u, the image is %ux%ux1\n", h, w, c, ih, iw);
  } else if (ls_client_connect(argv[1], ls_bundle_name(bundle), 3000, &client) != LS_OK) {
    fail("connect");
  } else if (ls_session_create(bundle, client, &session) != LS_OK) {
    fail("session");
  } else if (ls_session_run(session, NULL, pixels, h, w, 1, 0, top, 1, &n, &t) != LS_OK || n != 1) {
    fail("inference");
  } else {
    printf("%u %s %.4f %zu bytes sent, %.0f us\n", top[0].index, ls_bundle_label(bundle, top[0].index),
           top[0].score, t.request_bytes, t.total_us);
    rc = 0;
  }
  ls_session_destroy(session);
  ls_client_close(client);
  ls_bundle_close(bundle);
  return rc;
}
