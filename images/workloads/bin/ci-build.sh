#!/bin/sh
# A CI build pod's job: clone the repository into the runner's workspace
# (GitLab's /builds), build with make and gcc, run its tests.
set -eu
work=/builds/shop
mkdir -p "$work"
git init -q --bare "$work/origin.git"
git clone -q "$work/origin.git" "$work/src" 2>/dev/null
cd "$work/src"
git config user.email ci@example.com
git config user.name ci
cat > hello.c <<'C'
#include <stdio.h>
int add(int a, int b) { return a + b; }
int main(void) { printf("%d\n", add(2, 3)); return 0; }
C
printf 'hello: hello.c\n\t$(CC) -O2 -Wall -o $@ $<\ntest: hello\n\t./hello | grep -qx 5\n' > Makefile
git add . && git commit -qm "hello" && git push -q origin HEAD 2>/dev/null
git clone -q "$work/origin.git" "$work/build"
cd "$work/build"
make -s test
echo "ci build passed"
