# cmake -DINPUT=file -DOUTPUT=header -DNAME=kSymbol -P embed.cmake
# Writes a header holding the input file as a C++ raw string literal.
file(READ "${INPUT}" content)
file(WRITE "${OUTPUT}" "// Generated from ${INPUT} by cmake/embed.cmake.\n#pragma once\n\ninline constexpr char ${NAME}[] = R\"lai_embed(${content})lai_embed\";\n")
