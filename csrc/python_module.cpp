// Python entry point of the compiled library: importing `mmclip._C` loads the shared
// object, whose static initialisers register the `mmclip` operators with the dispatcher.
#include <Python.h>

extern "C" {
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C",
                                          "mmclip compiled operators", -1, nullptr};
  return PyModule_Create(&module_def);
}
}
