// freshet: the stock binary, one subcommand per role, with the example
// domains (inventory, accounts) and the stock_levels projection.
#include "freshet/main.h"

int main(int argc, char** argv) { return freshet::Main(argc, argv, freshet::StockRegistry()); }
