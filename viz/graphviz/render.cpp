// graphviz through its C library. One GVC context for the whole process, made on first use
// and never freed: graphviz 2.42's pango plugin remembers the last font name by pointer into
// the context's font table, so freeing a context and rendering with a new one reads freed
// memory (AddressSanitizer found it on the second drawing of a test process). graphviz
// reports problems through a process-wide error callback; while a call runs it collects
// them, so that an Error can quote them instead of graphviz printing to stderr.
#include "viz/graphviz/render.h"

#include <memory>
#include <string>

#include <graphviz/cgraph.h>
#include <graphviz/gvc.h>

#include "engine/error.h"

namespace cellgraph::viz {

namespace {

std::string& collected_messages() {
  static std::string messages;
  return messages;
}

int collect_message(char* text) {
  collected_messages().append(text);
  return 0;
}

// Installs the collecting callback for its lifetime (errors only: warnings are dropped).
class CollectMessages {
 public:
  CollectMessages() : previous_(agseterrf(collect_message)), level_(agseterr(AGERR)) {
    collected_messages().clear();
  }
  ~CollectMessages() {
    agseterrf(previous_);
    agseterr(level_);
  }
  CollectMessages(const CollectMessages&) = delete;
  CollectMessages& operator=(const CollectMessages&) = delete;

  // The messages so far on one line, or `fallback` when graphviz said nothing.
  static std::string text(const std::string& fallback) {
    std::string s = collected_messages();
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    for (char& c : s)
      if (c == '\n') c = ' ';
    return s.empty() ? fallback : s;
  }

 private:
  agusererrf previous_;
  agerrlevel_t level_;
};

// The process's context (see above); null when graphviz could not start.
GVC_t* shared_context() {
  static GVC_t* const kGvc = gvContext();
  return kGvc;
}

struct GraphDeleter {
  void operator()(Agraph_t* g) const { agclose(g); }
};

}  // namespace

bool graphviz_available() { return true; }

std::string render_dot(const std::string& dot, const std::string& format,
                       const std::string& label) {
  const CollectMessages messages;
  GVC_t* const gvc = shared_context();
  if (gvc == nullptr) throw error(label, ": graphviz could not start (gvContext failed)");
  const std::unique_ptr<Agraph_t, GraphDeleter> graph(agmemread(dot.c_str()));
  if (!graph)
    throw error(label,
                ": graphviz rejected the DOT text: ", CollectMessages::text("no graph in it"));
  if (gvLayout(gvc, graph.get(), "dot") != 0)
    throw error(label, ": graphviz layout failed: ",
                CollectMessages::text("the dot layout plugin is missing"));
  char* data = nullptr;
  unsigned int length = 0;
  const int status = gvRenderData(gvc, graph.get(), format.c_str(), &data, &length);
  std::string out = status == 0 && data != nullptr ? std::string(data, length) : std::string();
  if (data != nullptr) gvFreeRenderData(data);
  gvFreeLayout(gvc, graph.get());
  if (status != 0)
    throw error(label, ": graphviz cannot render '", format,
                "': ", CollectMessages::text("no renderer plugin for it is installed"));
  return out;
}

}  // namespace cellgraph::viz
