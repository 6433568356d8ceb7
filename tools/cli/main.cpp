#include <cstdio>
int main() { std::puts("vila"); return 0; }
