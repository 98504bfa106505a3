/* io/safetensors.h - write (and read back) the safetensors format.
 *
 * Layout (https://github.com/huggingface/safetensors): u64 little-endian N, then N bytes of
 * JSON header {"__metadata__": {...}, "<name>": {"dtype": "F32", "shape": [...],
 * "data_offsets": [begin, end]}, ...} padded with spaces to a multiple of 8, then the tensor
 * bytes back to back (offsets relative to the end of the header). dfm writes float32 tensors
 * under the parameter table's names, which are the PyTorch reference U-Net's state_dict keys
 * (tests/torch/unet_torch.py), so torch's load_state_dict takes the file unchanged.
 *
 * The reader accepts the files this writer produces (F32 only, one flat JSON object) and checks
 * every offset and size with overflow-checked arithmetic.
 */
#ifndef DFM_IO_SAFETENSORS_H
#define DFM_IO_SAFETENSORS_H

#include <stddef.h>

#include "io/weights.h"

/* Write the tensors of t (offsets into data) atomically; meta: n_meta "key", "value" pairs
 * (strings without quotes or backslashes) for __metadata__. */
int safetensors_write(const char *path, const WeightsTensor *t, size_t n_tensors,
                      const float *data, const char *const *meta, size_t n_meta);

/* Read a file written by safetensors_write: tensors in file order, data packed in that order
 * (w->n floats, w->ema NULL). */
int safetensors_read(Weights *w, const char *path);

#endif
