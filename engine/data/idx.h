// IDX files, the MNIST / Fashion-MNIST container: a 4-byte magic (0x00 0x00 type rank),
// `rank` big-endian uint32 extents, then the elements row-major. Files may be raw or
// gzip-compressed (recognised by the gzip magic 1f 8b). Only element type 0x08 (unsigned
// byte) is supported, which is all the image and label files use.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cellgraph {

struct IdxArray {
  std::vector<int64_t> dims;  // extents from the header, outermost first
  std::vector<uint8_t> data;  // product(dims) bytes, row-major
};

// Reads a whole IDX file. `expected_rank` (-1: any) is checked before the data is read;
// `what` ("image", "label") names the contents in messages. Throws cellgraph::Error naming
// the file, what is wrong and what was expected: an unreadable file, a corrupt gzip
// stream, bad magic, an unsupported element type, a wrong rank, truncated data ("...:
// expected 47040000 bytes of image data, found 1234") or bytes after the data.
IdxArray read_idx(const std::string& path, int expected_rank = -1,
                  std::string_view what = "element");

// Writes an IDX file of unsigned bytes, gzip-compressed when `gzip` (zlib's gzopen), raw
// otherwise. data.size() must equal product(dims). Throws cellgraph::Error when the file
// cannot be written. Used by tests and to export subsets.
void write_idx(const std::string& path, const std::vector<int64_t>& dims,
               const std::vector<uint8_t>& data, bool gzip);

}  // namespace cellgraph
