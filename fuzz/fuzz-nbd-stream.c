/* libFuzzer target: an arbitrary byte stream from a client, from the
 * first byte of the handshake on, into a server over a socketpair.  The
 * server must survive it, clean the connection up, and leave no command or
 * vector out.  A fuzz input that starts with 'G' gets a valid handshake
 * (with structured replies) prepended, so that the transmission phase is
 * reached too; fuzz-nbd-transmission starts there and checks the replies. */
#include <config.h>

#include "nbd-harness.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  uint8_t pre[64];
  size_t npre = 0;

  if (size > 0 && data[0] == 'G') {      /* flags, STRUCTURED_REPLY, GO "" */
    be_put32 (pre, 3);
    memcpy (pre + 4, "IHAVEOPT", 8); be_put32 (pre + 12, 8); be_put32 (pre + 16, 0);
    memcpy (pre + 20, "IHAVEOPT", 8); be_put32 (pre + 28, 7); be_put32 (pre + 32, 6);
    be_put32 (pre + 36, 0); pre[40] = 0; pre[41] = 0;
    npre = 42;
    data++;
    size--;
  }
  fuzz_nbd_converse (pre, npre, data, size, NULL, NULL);
  return 0;
}
