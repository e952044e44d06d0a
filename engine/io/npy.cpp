#include "engine/io/npy.h"

#include <bit>
#include <cstring>
#include <limits>

#include "engine/error.h"
#include "engine/io/file.h"

namespace cellgraph::io {

static_assert(std::endian::native == std::endian::little,
              ".npy data is read as little-endian '<f4'; add byte swapping for this platform");

namespace {

constexpr char kMagic[] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};
constexpr size_t kMagicSize = sizeof kMagic;

std::string shape_text(const std::vector<int64_t>& dims, bool with_wildcards) {
  std::string out = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i > 0) out += ", ";
    out += with_wildcards && dims[i] < 0 ? "N" : std::to_string(dims[i]);
  }
  return out + "]";
}

// The header dict, e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }.
// A small recursive-descent reader of exactly the Python literals NumPy writes there.
class HeaderParser {
 public:
  HeaderParser(const std::string& path, const std::string& text) : path_(path), text_(text) {}

  struct Header {
    std::string descr;
    bool fortran_order = false;
    std::vector<int64_t> shape;
  };

  Header parse() {
    Header h;
    bool seen_descr = false, seen_order = false, seen_shape = false;
    expect('{');
    while (true) {
      skip_space();
      if (peek() == '}') break;
      const std::string key = string_literal();
      expect(':');
      if (key == "descr") {
        h.descr = string_literal();
        seen_descr = true;
      } else if (key == "fortran_order") {
        h.fortran_order = boolean();
        seen_order = true;
      } else if (key == "shape") {
        h.shape = tuple();
        seen_shape = true;
      } else {
        fail("unknown key '" + key + "'; expected only 'descr', 'fortran_order' and 'shape'");
      }
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() != '}') fail("expected ',' or '}'");
    }
    ++pos_;
    skip_space();
    if (pos_ != text_.size()) fail("unexpected text after the closing '}'");
    if (!seen_descr || !seen_order || !seen_shape)
      fail(std::string("missing key '") +
           (!seen_descr   ? "descr"
            : !seen_order ? "fortran_order"
                          : "shape") +
           "'");
    return h;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw error(path_, ": malformed .npy header at byte ", pos_, " of the header dict: ", what,
                " (header: ", printable(), ")");
  }

  std::string printable() const {
    std::string out;
    for (char c : text_.substr(0, 120)) out += (c >= 32 && c < 127) ? c : '?';
    return out + (text_.size() > 120 ? "..." : "");
  }

  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }

  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' ||
                                   text_[pos_] == '\t' || text_[pos_] == '\r'))
      ++pos_;
  }

  void expect(char c) {
    skip_space();
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }

  std::string string_literal() {
    skip_space();
    const char quote = peek();
    if (quote != '\'' && quote != '"') fail("expected a quoted string");
    const size_t end = text_.find(quote, pos_ + 1);
    if (end == std::string::npos) fail("unterminated string");
    std::string s = text_.substr(pos_ + 1, end - pos_ - 1);
    pos_ = end + 1;
    return s;
  }

  bool boolean() {
    skip_space();
    if (text_.compare(pos_, 4, "True") == 0) {
      pos_ += 4;
      return true;
    }
    if (text_.compare(pos_, 5, "False") == 0) {
      pos_ += 5;
      return false;
    }
    fail("expected True or False");
  }

  std::vector<int64_t> tuple() {
    expect('(');
    std::vector<int64_t> dims;
    while (true) {
      skip_space();
      if (peek() == ')') break;
      if (peek() < '0' || peek() > '9') fail("expected a non-negative integer extent");
      int64_t v = 0;
      while (peek() >= '0' && peek() <= '9') {
        const int digit = peek() - '0';
        if (v > (std::numeric_limits<int64_t>::max() - digit) / 10) fail("extent too large");
        v = v * 10 + digit;
        ++pos_;
      }
      dims.push_back(v);
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() != ')') fail("expected ',' or ')' in the shape");
    }
    ++pos_;
    return dims;
  }

  const std::string& path_;
  const std::string& text_;
  size_t pos_ = 0;
};

}  // namespace

Tensor read_npy(const std::string& path) {
  const std::string data = read_file(path);
  if (data.size() < kMagicSize || std::memcmp(data.data(), kMagic, kMagicSize) != 0)
    throw error(path, ": not a .npy file (expected it to start with the magic '\\x93NUMPY')");
  if (data.size() < kMagicSize + 2)
    throw error(path, ": truncated in the .npy preamble (", data.size(), " bytes)");
  const int major = static_cast<unsigned char>(data[kMagicSize]);
  const int minor = static_cast<unsigned char>(data[kMagicSize + 1]);
  if ((major != 1 && major != 2) || minor != 0)
    throw error(path, ": unsupported .npy format version ", major, ".", minor,
                "; expected 1.0 or 2.0");
  const size_t len_size = major == 1 ? 2 : 4;
  const size_t prefix = kMagicSize + 2 + len_size;
  if (data.size() < prefix)
    throw error(path, ": truncated in the .npy preamble (", data.size(),
                " bytes, expected at least ", prefix, ")");
  uint32_t header_len = 0;
  std::memcpy(&header_len, data.data() + kMagicSize + 2, len_size);
  if (data.size() < prefix + header_len)
    throw error(path, ": truncated in the .npy header: it declares ", header_len,
                " header bytes, the file has ", data.size() - prefix, " after the preamble");
  const std::string text = data.substr(prefix, header_len);
  if (text.empty() || text.back() != '\n')
    throw error(path, ": malformed .npy header: it does not end with a newline");
  const HeaderParser::Header h = HeaderParser(path, text).parse();
  if (h.descr != "<f4")
    throw error(path, ": unsupported dtype '", h.descr,
                "'; expected '<f4' (float32, little-endian; save with arr.astype('<f4'))");
  if (h.fortran_order)
    throw error(path,
                ": Fortran-order arrays are not supported; expected C order (save with "
                "np.ascontiguousarray)");
  int64_t numel = 1;
  for (int64_t d : h.shape) {
    if (d == 0) throw error(path, ": the array ", shape_text(h.shape, false), " has no elements");
    if (numel > std::numeric_limits<int64_t>::max() / 4 / d)
      throw error(path, ": the shape ", shape_text(h.shape, false), " is too large");
    numel *= d;
  }
  const uint64_t need = uint64_t(numel) * sizeof(float);
  const uint64_t have = data.size() - prefix - header_len;
  if (have < need)
    throw error(path, ": truncated: the shape ", shape_text(h.shape, false), " needs ", need,
                " data bytes, the file has ", have);
  if (have > need)
    throw error(path, ": ", have - need, " unexpected bytes after the data of shape ",
                shape_text(h.shape, false), " (expected ", need, " data bytes)");
  const Shape shape = h.shape.empty() ? Shape{1} : Shape(h.shape);
  Tensor t = Tensor::empty(shape);
  std::memcpy(t.data(), data.data() + prefix + header_len, need);
  return t;
}

Tensor read_npy(const std::string& path, const std::vector<int64_t>& expected,
                const std::string& what) {
  Tensor t = read_npy(path);
  const std::vector<int64_t>& got = t.shape().dims();
  bool ok = got.size() == expected.size();
  for (size_t i = 0; ok && i < got.size(); ++i) ok = expected[i] < 0 || expected[i] == got[i];
  if (!ok)
    throw error(path, ": ", what, ": got shape ", shape_text(got, false), ", expected ",
                shape_text(expected, true));
  return t;
}

std::string encode_npy(const Shape& shape, const std::vector<float>& values) {
  CG_ASSERT(shape.numel() == int64_t(values.size()), "npy: ", values.size(), " values for ",
            shape.str());
  // Python tuple syntax: () for 0-d, (5,) for one extent, (2, 3) for more.
  std::string dims;
  for (int64_t d : shape.dims()) dims += (dims.empty() ? "" : ", ") + std::to_string(d);
  if (shape.rank() == 1) dims += ",";
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  // Pad with spaces so the data starts at a multiple of 64 bytes, as NumPy does.
  const size_t prefix = kMagicSize + 2 + 2;
  size_t total = prefix + dict.size() + 1;
  total = (total + 63) / 64 * 64;
  dict.append(total - prefix - dict.size() - 1, ' ');
  dict += '\n';
  CG_ASSERT(dict.size() <= std::numeric_limits<uint16_t>::max(), "npy header too long");
  std::string out(kMagic, kMagicSize);
  out += '\x01';
  out += '\x00';
  const uint16_t len = uint16_t(dict.size());
  out.append(reinterpret_cast<const char*>(&len), sizeof len);
  out += dict;
  out.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  return out;
}

void write_npy(const std::string& path, const Tensor& tensor) {
  write_file_atomic(path, encode_npy(tensor.shape(), tensor.to_vector()));
}

}  // namespace cellgraph::io
